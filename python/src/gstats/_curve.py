"""ZeroMQ CURVE keys for the client sockets (PUSH to the stats address, REQ
to the control address).

Keys are 40 characters of Z85. Key files are in the format of ZeroMQ's
certificate files (czmq's zcert), as ``gstatsctl keygen NAME`` writes them::

    metadata
        name = "web-1"
    curve
        public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
        secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"

``NAME.key`` holds the public key only; ``NAME.key_secret`` both (mode
0600). A file holding only a bare 40-character key is a public key.

Settings (read when the configuration is loaded, so that a bad key stops
the application at start, never at a request):

    GSTATS_CURVE_SERVER_KEY   the collector's public key: 40 characters of
                              Z85, or the path of its key file (NAME.key)
    GSTATS_CURVE_CLIENT_KEY   the path of this client's secret key file
                              (NAME.key_secret); its public key must be in
                              the collector's curve_client_keys
"""

import os
import stat

import zmq

__all__ = ["CurveKeys", "KEY_LEN", "from_environ", "load_public", "load_secret", "parse_key_file"]

#: Length of a key in Z85.
KEY_LEN = 40

_Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_Z85_VALUE = {c: i for i, c in enumerate(_Z85)}

SERVER_KEY_VAR = "GSTATS_CURVE_SERVER_KEY"
CLIENT_KEY_VAR = "GSTATS_CURVE_CLIENT_KEY"


def check_key(key, what="key"):
    """Return ``key`` (str) if it is a valid Z85 CURVE key, else raise ValueError."""
    if isinstance(key, bytes):
        try:
            key = key.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("%s is not ASCII Z85" % what) from None
    if not isinstance(key, str):
        raise ValueError("%s must be a string, got %s" % (what, type(key).__name__))
    if len(key) != KEY_LEN:
        raise ValueError("%s: a CURVE key is %d characters of Z85, got %d" % (what, KEY_LEN, len(key)))
    for i in range(0, KEY_LEN, 5):
        v = 0
        for j in range(i, i + 5):
            d = _Z85_VALUE.get(key[j])
            if d is None:
                raise ValueError("%s: character %d, %r, is not in the Z85 alphabet"
                                 % (what, j + 1, key[j]))
            v = v * 85 + d
        if v > 0xFFFFFFFF:
            raise ValueError("%s: characters %d to %d are not valid Z85" % (what, i + 1, i + 5))
    return key


def parse_key_file(text, source="key file"):
    """``(public, secret)`` from a key file's text; secret is None if absent.

    Raises ValueError naming the line that is wrong.
    """
    public = secret = bare = None
    for n, line in enumerate(text.splitlines(), 1):
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        name, sep, value = t.partition("=")
        if not sep:
            if len(t) == KEY_LEN and bare is None and public is None and secret is None:
                try:
                    bare = check_key(t)
                    continue
                except ValueError:
                    pass
            if line == t and all(c.isalnum() or c in "-_" for c in t):
                continue  # a section name: metadata, curve
            raise ValueError('%s, line %d: %r: want name = "value", a section name, or a bare '
                             '%d-character key' % (source, n, t[:48], KEY_LEN))
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name not in ("public-key", "secret-key"):
            continue  # metadata
        if (public if name == "public-key" else secret) is not None:
            raise ValueError("%s, line %d: %s is given twice" % (source, n, name))
        check_key(value, "%s, line %d: %s" % (source, n, name))
        if name == "public-key":
            public = value
        else:
            secret = value
    if bare is not None:
        if public is not None or secret is not None:
            raise ValueError("%s: a bare key and public-key/secret-key lines in one file" % source)
        public = bare
    if public is None:
        if secret is not None:
            raise ValueError("%s: a secret-key without its public-key" % source)
        raise ValueError('%s: no key found: want a public-key = "..." line or a bare key' % source)
    return public, secret


def _read(path, what):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError("%s: cannot read %s: %s" % (what, path, exc)) from None


def load_public(spec, what=SERVER_KEY_VAR):
    """A public key given as itself (40 characters of Z85) or as a key file's path."""
    if not isinstance(spec, str) or not spec:
        raise ValueError("%s must be a 40-character Z85 key or a key file path" % what)
    if len(spec) == KEY_LEN and not os.path.exists(spec):
        try:
            return check_key(spec, what)
        except ValueError:
            pass
    if not os.path.exists(spec):
        raise ValueError("%s=%r is neither a %d-character Z85 key nor a key file"
                         % (what, spec[:48], KEY_LEN))
    public, _ = parse_key_file(_read(spec, what), "%s: CURVE key file %s" % (what, spec))
    return public


def load_secret(path, what=CLIENT_KEY_VAR):
    """``(public, secret)`` from a secret key file readable by its owner only."""
    if not isinstance(path, str) or not path:
        raise ValueError("%s must be the path of a secret key file (NAME.key_secret)" % what)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError as exc:
        raise ValueError("%s: CURVE secret key file %s: %s" % (what, path, exc.strerror)) from None
    source = "%s: CURVE key file %s" % (what, path)
    public, secret = parse_key_file(_read(path, what), source)
    if secret is None:
        raise ValueError("%s holds no secret-key: give the .key_secret file, not the .key one"
                         % source)
    if mode & 0o077:
        raise ValueError("%s: CURVE secret key file %s has mode %04o: other users can read it; "
                         "run chmod 600 %s" % (what, path, mode, path))
    if zmq.curve_public(secret.encode()).decode() != public:
        raise ValueError("%s: its public-key is not the one of its secret-key" % source)
    return public, secret


class CurveKeys:
    """The keys a client socket needs: the server's public key and a pair."""

    __slots__ = ("server", "public", "secret")

    def __init__(self, server, public, secret):
        self.server = check_key(server, "server key").encode()
        self.public = check_key(public, "client public key").encode()
        self.secret = check_key(secret, "client secret key").encode()

    def __repr__(self):
        return "CurveKeys(server=%r, public=%r)" % (self.server.decode(), self.public.decode())

    def __eq__(self, other):
        return isinstance(other, CurveKeys) and (self.server, self.public, self.secret) == (
            other.server, other.public, other.secret)

    def __hash__(self):
        return hash((self.server, self.public))

    def apply(self, sock):
        """Make ``sock`` a CURVE client (before it connects)."""
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)


def resolve(server_key, client_key, server_what=SERVER_KEY_VAR, client_what=CLIENT_KEY_VAR):
    """``CurveKeys`` from a server key (Z85 or key file) and a client secret key file.

    Both empty or None: None (CURVE off). Raises ValueError with a message
    naming the setting when anything is wrong.
    """
    if not server_key:
        if client_key:
            raise ValueError("%s is set but %s is not, so CURVE would be off; set the "
                             "collector's public key too" % (client_what, server_what))
        return None
    if not zmq.has("curve"):
        raise ValueError("%s is set but this libzmq (%s) has no CURVE support (it was built "
                         "without libsodium)" % (server_what, zmq.zmq_version()))
    server = load_public(server_key, server_what)
    if not client_key:
        raise ValueError("%s is set but %s is not; the collector only accepts the public keys "
                         "in its curve_client_keys (gstatsctl keygen NAME writes "
                         "NAME.key_secret)" % (server_what, client_what))
    public, secret = load_secret(client_key, client_what)
    return CurveKeys(server, public, secret)


def from_environ(env=None):
    """``CurveKeys`` from GSTATS_CURVE_SERVER_KEY and GSTATS_CURVE_CLIENT_KEY, or None."""
    env = os.environ if env is None else env
    return resolve((env.get(SERVER_KEY_VAR) or "").strip(), (env.get(CLIENT_KEY_VAR) or "").strip())
