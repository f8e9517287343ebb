// Package metrics owns Svyazka's Prometheus registry: HTTP latency by route,
// asynq queue sizes and the sync counters later capabilities increment.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the registry and the collectors the service updates directly.
type Metrics struct {
	Registry *prometheus.Registry

	// HTTPDuration observes request latency by method, route pattern and status.
	HTTPDuration *prometheus.HistogramVec
	// SyncRecords counts source records written to a CRM, by source, entity
	// (patient, appointment) and result (created, updated, skipped, failed).
	SyncRecords *prometheus.CounterVec
	// AmoRequests counts amoCRM API calls by endpoint class and status code.
	AmoRequests *prometheus.CounterVec
}

// New returns metrics on a fresh registry with Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "svyazka", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency by method, route and status.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "status"}),
		SyncRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "svyazka", Subsystem: "sync", Name: "records_total",
			Help: "Source records processed by the sync engine, by source, entity and result.",
		}, []string{"source", "entity", "result"}),
		AmoRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "svyazka", Subsystem: "amocrm", Name: "requests_total",
			Help: "amoCRM API requests by endpoint and HTTP status.",
		}, []string{"endpoint", "status"}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.HTTPDuration, m.SyncRecords, m.AmoRequests,
	)
	return m
}
