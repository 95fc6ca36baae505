package httpserver

// fdReserve is how many file descriptors are kept for everything that is
// not a client connection: the listener, logs, storage writes, upstream
// and checksum database connections, the runtime's own.
const fdReserve = 64

// fdsPerConn is what one client connection may hold at worst: its socket,
// the stored file it is being sent, and during a cold fetch a share of the
// upstream connection and scratch file.
const fdsPerConn = 3

// MaxConns returns the connection cap to use when requested connections
// are asked for and the process may open nofile file descriptors (0:
// unknown, no adjustment). It is requested, or less when nofile minus a
// reserve cannot hold that many connections, but never below 1.
func MaxConns(requested int, nofile uint64) int {
	if nofile == 0 {
		return requested
	}
	allowed := 1
	if nofile > fdReserve+fdsPerConn {
		allowed = int(min((nofile-fdReserve)/fdsPerConn, 1<<30))
	}
	return min(requested, allowed)
}
