// Package metrics holds modgate's Prometheus collectors, registered in one
// registry that /metrics serves.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is what /metrics exposes.
var Registry = prometheus.NewRegistry()

var (
	// Requests counts HTTP requests by endpoint (info, mod, zip, list, latest,
	// sumdb, ops, invalid) and status code.
	Requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modgate_http_requests_total",
		Help: "HTTP requests by endpoint and status code.",
	}, []string{"endpoint", "code"})

	// RequestDuration is the time to answer a request, by endpoint.
	RequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "modgate_http_request_duration_seconds",
		Help:    "Time to answer HTTP requests, by endpoint.",
		Buckets: []float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5, 15, 60, 300},
	}, []string{"endpoint"})

	// BytesServed counts response body bytes by endpoint.
	BytesServed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modgate_http_response_bytes_total",
		Help: "Response body bytes written, by endpoint.",
	}, []string{"endpoint"})

	// CacheResults counts cache lookups by kind and result: hit, miss,
	// stale (served, refreshed in the background), stale_if_error (served
	// because the source failed), negative (a remembered not-found answer),
	// degraded (a list or @latest made from stored files alone because the
	// source failed) and rate_limited (refused: the client's upstream rate
	// limit).
	CacheResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modgate_cache_requests_total",
		Help: "Cache lookups by kind (info, mod, zip, list, latest, query) and result (hit, miss, stale, stale_if_error, negative, degraded, rate_limited).",
	}, []string{"kind", "result"})

	// UpstreamFetches counts fetches from origins by kind and outcome
	// (ok, not_found, error, invalid).
	UpstreamFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modgate_upstream_fetches_total",
		Help: "Fetches from upstream sources by kind and outcome.",
	}, []string{"kind", "outcome"})

	// UpstreamDuration is the latency of fetches from origins.
	UpstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "modgate_upstream_fetch_duration_seconds",
		Help:    "Latency of fetches from upstream sources, by kind.",
		Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"kind"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		Requests, RequestDuration, BytesServed, CacheResults, UpstreamFetches, UpstreamDuration,
	)
}

var (
	// SumDBVerifications counts hash checks against the checksum database by
	// result (ok, mismatch, not_in_db, unavailable, security_error, skipped).
	SumDBVerifications = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modgate_sumdb_verifications_total",
		Help: "Module hash checks against the checksum database, by result.",
	}, []string{"result"})

	// SumDBSecurityErrors counts inconsistent trees presented by the database.
	SumDBSecurityErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "modgate_sumdb_security_errors_total",
		Help: "Checksum database security errors (a forked or rolled-back log).",
	})
)

func init() {
	Registry.MustRegister(SumDBVerifications, SumDBSecurityErrors)
}

// Prefetches counts speculative prefetches (package prefetch) by result:
// scheduled (queued), dropped (not queued: the queue was full or the byte
// budget spent), ok and error (done).
var Prefetches = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "modgate_prefetch_total",
	Help: "Prefetches of the .info and go.mod of required modules, by result (scheduled, dropped, ok, error).",
}, []string{"result"})

func init() {
	Registry.MustRegister(Prefetches)
}

var (
	// AuditEvents counts audit events written (package audit), by decision
	// (allow, deny, would-deny).
	AuditEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modgate_audit_events_total",
		Help: "Audit log events written, by decision (allow, deny, would-deny).",
	}, []string{"decision"})

	// AuditDropped counts audit events that could not be written to the
	// audit log (they are logged to the process log instead).
	AuditDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "modgate_audit_dropped_total",
		Help: "Audit events that could not be written to the audit log.",
	})
)

func init() {
	Registry.MustRegister(AuditEvents, AuditDropped)
}

var (
	// AccessDropped counts accesses of module versions that were not
	// recorded (package access): the recorder held as many versions as
	// it may until its next write.
	AccessDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "modgate_access_dropped_total",
		Help: "Accesses of module versions not recorded because the in-memory table was full.",
	})

	// AccessFlushErrors counts failed writes of usage documents (package
	// access); their counts are written at the next try.
	AccessFlushErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "modgate_access_flush_errors_total",
		Help: "Usage documents that could not be written (kept for the next write).",
	})
)

func init() {
	Registry.MustRegister(AccessDropped, AccessFlushErrors)
}
