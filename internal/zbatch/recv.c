#include "recv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

gs_batch *gs_batch_new(int max_msgs, size_t cap) {
	gs_batch *b = calloc(1, sizeof(*b));
	if (b == NULL) {
		return NULL;
	}
	b->buf = malloc(cap);
	b->meta = calloc((size_t)max_msgs * GS_STRIDE, sizeof(uint32_t));
	if (b->buf == NULL || b->meta == NULL) {
		gs_batch_free(b);
		return NULL;
	}
	b->cap = cap;
	b->max_msgs = max_msgs;
	return b;
}

void gs_batch_free(gs_batch *b) {
	if (b == NULL) {
		return;
	}
	free(b->buf);
	free(b->meta);
	free(b);
}

// reserve makes room for n more bytes in buf. It fails only when memory
// runs out.
static int reserve(gs_batch *b, size_t n) {
	if (b->cap - b->used >= n) {
		return 0;
	}
	size_t cap = b->cap * 2;
	if (cap < b->used + n) {
		cap = b->used + n;
	}
	char *buf = realloc(b->buf, cap);
	if (buf == NULL) {
		return -1;
	}
	b->buf = buf;
	b->cap = cap;
	return 0;
}

// gs_batch_recv receives, without blocking, whole messages until none is
// queued, max_msgs have been read, or soft_limit bytes are filled. It
// returns 0, or an errno value when the socket failed before any message
// was read (EAGAIN is not a failure: nmsgs is then 0). A message is never
// split between two calls.
int gs_batch_recv(gs_batch *b, void *socket, size_t soft_limit) {
	zmq_msg_t msg;
	b->used = 0;
	b->nmsgs = 0;
	if (zmq_msg_init(&msg) != 0) {
		return errno;
	}
	int rc = 0;
	while (b->nmsgs < b->max_msgs && b->used < soft_limit) {
		uint32_t *m = b->meta + (size_t)b->nmsgs * GS_STRIDE;
		uint32_t frames = 0;
		int more = 1;
		while (more) {
			// The first frame may wait for nothing; the others of a
			// message are already queued, as libzmq delivers messages
			// whole.
			if (zmq_msg_recv(&msg, socket, ZMQ_DONTWAIT) < 0) {
				int e = errno;
				if (e == EINTR) {
					continue;
				}
				if (frames == 0) {
					if (e != EAGAIN && b->nmsgs == 0) {
						rc = e;
					}
					goto done;
				}
				break; // keep the frames read so far as a message
			}
			more = zmq_msg_more(&msg);
			size_t size = zmq_msg_size(&msg);
			if (frames < GS_KEPT) {
				if (size > UINT32_MAX || reserve(b, size) != 0) {
					size = 0; // counted as an empty frame: rejected later
				} else {
					memcpy(b->buf + b->used, zmq_msg_data(&msg), size);
					b->used += size;
				}
				m[1 + frames] = (uint32_t)size;
			}
			if (frames < UINT32_MAX) {
				frames++;
			}
		}
		m[0] = frames;
		b->nmsgs++;
	}
done:
	zmq_msg_close(&msg);
	return rc;
}

// gs_batch_send sends, without blocking, the nmsgs messages laid out as
// gs_batch_recv lays them out (at most GS_KEPT frames each), stopping at the
// first message the socket cannot take. *sent is the number of whole
// messages sent. It returns 0 or an errno value (EAGAIN is not a failure).
int gs_batch_send(void *socket, const char *buf, const uint32_t *meta, int nmsgs, int *sent) {
	size_t off = 0;
	*sent = 0;
	for (int i = 0; i < nmsgs; i++) {
		const uint32_t *m = meta + (size_t)i * GS_STRIDE;
		uint32_t frames = m[0] < GS_KEPT ? m[0] : GS_KEPT;
		for (uint32_t f = 0; f < frames; f++) {
			int flags = ZMQ_DONTWAIT | (f + 1 < frames ? ZMQ_SNDMORE : 0);
			while (zmq_send(socket, buf + off, m[1 + f], flags) < 0) {
				int e = errno;
				if (e == EINTR) {
					continue;
				}
				// Only a first frame can be refused: libzmq takes the
				// rest of a message once it took its first frame.
				return e == EAGAIN ? 0 : e;
			}
			off += m[1 + f];
		}
		(*sent)++;
	}
	return 0;
}
