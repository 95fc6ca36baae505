package protocol

import "context"

type clientKey struct{}

// WithClient returns ctx carrying the address of the client a request came
// from: an IP, or host:port as in http.Request.RemoteAddr. Every layer that
// treats clients differently reads it from there (the cache rate-limits
// lookups per client; a context without a client, such as a background
// refresh, is not limited).
//
// The HTTP layer passes the connection's remote address, never a header
// such as X-Forwarded-For, which any client can set.
func WithClient(ctx context.Context, addr string) context.Context {
	// The address is parsed only by those who need it: cache hits, most
	// requests, pay for this context value and nothing else.
	return context.WithValue(ctx, clientKey{}, addr)
}

// ClientAddr returns the client address WithClient put in ctx.
func ClientAddr(ctx context.Context) (addr string, ok bool) {
	addr, ok = ctx.Value(clientKey{}).(string)
	return addr, ok
}
