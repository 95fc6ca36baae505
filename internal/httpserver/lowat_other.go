//go:build !linux && !darwin

package httpserver

import "net"

// setNotSentLowat does nothing where TCP_NOTSENT_LOWAT is not known to
// exist: send deadlines are then coarser on fast paths (see notSentLowat).
func setNotSentLowat(*net.TCPConn) {}
