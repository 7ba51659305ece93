// Batched receiving and sending on a libzmq socket: one call from Go
// reads or writes many whole messages.
#ifndef GSTATS_ZBATCH_RECV_H
#define GSTATS_ZBATCH_RECV_H

#include <stddef.h>
#include <stdint.h>

// GS_KEPT is how many frames of a message are copied; further frames are
// received and counted, their bytes discarded.
#define GS_KEPT 4
// GS_STRIDE is the number of uint32 values describing one message in meta:
// its frame count, then the lengths of its first GS_KEPT frames.
#define GS_STRIDE (1 + GS_KEPT)

typedef struct {
	char *buf;       // frame bytes of the messages received, back to back
	size_t cap;      // allocated size of buf
	size_t used;     // bytes of buf filled by the last call
	uint32_t *meta;  // GS_STRIDE values per message
	int max_msgs;    // capacity of meta, in messages
	int nmsgs;       // messages received by the last call
} gs_batch;

gs_batch *gs_batch_new(int max_msgs, size_t cap);
void gs_batch_free(gs_batch *b);
int gs_batch_recv(gs_batch *b, void *socket, size_t soft_limit);
int gs_batch_send(void *socket, const char *buf, const uint32_t *meta, int nmsgs, int *sent);

#endif
