package munin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/gstats/gstats/internal/curvekey"
)

// The environment variables of the CURVE settings: env.curve_server_key
// and env.curve_client_key in plugin-conf.d, or the names gstatsctl and
// the clients read, which the plug-ins accept too.
const (
	EnvCurveServerKey       = "curve_server_key"
	EnvCurveClientKey       = "curve_client_key"
	EnvGstatsCurveServerKey = "GSTATS_CURVE_SERVER_KEY"
	EnvGstatsCurveClientKey = "GSTATS_CURVE_CLIENT_KEY"
)

// Curve are a plug-in's CURVE settings, as given; both empty without
// CURVE.
type Curve struct {
	// ServerKey is the collector's public key: 40 characters of Z85, or
	// a key file (its NAME.key).
	ServerKey string
	// ClientKey is the path of the plug-in's own key pair, a
	// NAME.key_secret file made by gstatsctl keygen.
	ClientKey string
	// ServerFrom and ClientFrom name the settings they were read from
	// (env.curve_server_key, GSTATS_CURVE_SERVER_KEY, ...).
	ServerFrom, ClientFrom string
}

// On reports whether CURVE is asked for.
func (c Curve) On() bool { return c.ServerKey != "" }

// CurveSettings reads the CURVE settings from the environment: each from
// its plugin-conf.d name, else from its GSTATS_ name. Giving one of the
// two without the other is an error that names the missing one.
func CurveSettings(getenv func(string) string) (Curve, error) {
	pick := func(name, gstatsName string) (string, string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v, "env." + name
		}
		if v := strings.TrimSpace(getenv(gstatsName)); v != "" {
			return v, gstatsName
		}
		return "", ""
	}
	var c Curve
	c.ServerKey, c.ServerFrom = pick(EnvCurveServerKey, EnvGstatsCurveServerKey)
	c.ClientKey, c.ClientFrom = pick(EnvCurveClientKey, EnvGstatsCurveClientKey)
	const both = "CURVE needs both the collector's public key and the plug-ins' key pair"
	switch {
	case c.ServerKey != "" && c.ClientKey == "":
		return Curve{}, fmt.Errorf("%s is set but not env.%s (nor %s): %s", c.ServerFrom, EnvCurveClientKey, EnvGstatsCurveClientKey, both)
	case c.ServerKey == "" && c.ClientKey != "":
		return Curve{}, fmt.Errorf("%s is set but not env.%s (nor %s): %s", c.ClientFrom, EnvCurveServerKey, EnvGstatsCurveServerKey, both)
	}
	return c, nil
}

// Keys are the CURVE keys a control client uses, in Z85: the collector's
// public key and the plug-ins' own pair; all empty without CURVE.
type Keys struct {
	ServerKey, Public, Secret string
}

// LoadKeys reads the keys c names from their files (or takes the
// collector's key as given). The error for a secret key file the plug-in
// cannot read names the user it runs as.
func LoadKeys(c Curve) (Keys, error) {
	if !c.On() {
		return Keys{}, nil
	}
	serverKey, err := curvekey.LoadPublic(c.ServerKey)
	if err != nil {
		if len(c.ServerKey) < curvekey.Len && c.ServerFrom == "env."+EnvCurveServerKey {
			// munin-node drops what follows a # in plugin-conf.d, and
			// # is a Z85 character.
			return Keys{}, fmt.Errorf("%s: the collector's public key: %w (if the key has a # in it, write it \\# in plugin-conf.d, or give the key file)", c.ServerFrom, err)
		}
		return Keys{}, fmt.Errorf("%s: the collector's public key: %w", c.ServerFrom, err)
	}
	pair, err := curvekey.LoadSecret(c.ClientKey)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return Keys{}, fmt.Errorf("%s: the plug-in runs as user %s, which cannot read %s (%w); make that user the file's owner (mode 600), or run the plug-ins as the file's owner with a \"user\" line in plugin-conf.d",
				c.ClientFrom, currentUser(), c.ClientKey, err)
		}
		return Keys{}, fmt.Errorf("%s: %w", c.ClientFrom, err)
	}
	return Keys{ServerKey: serverKey, Public: pair.Public, Secret: pair.Secret}, nil
}

// currentUser names the user the process runs as.
func currentUser() string {
	uid := os.Getuid()
	if u, err := user.Current(); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return "uid " + strconv.Itoa(uid)
}
