package httpserver

// notSentLowat is the low-water mark for a connection's unsent data.
//
// Without one, the kernel lets a socket's send buffer grow to megabytes on
// a fast path (autotuning), and wakes a blocked writer only when about a
// third of it has drained. A client reading slowly over such a connection
// then makes no visible progress for long stretches, and a send deadline
// cannot tell it from one that stopped: it would be dropped. With the mark,
// the socket is writable again as soon as its unsent data falls below it,
// so every byte the client takes shows. It also bounds what a stalled
// client pins in kernel memory to about this much. It does not limit
// throughput: data in flight (sent, not yet acknowledged) does not count.
const notSentLowat = 128 << 10
