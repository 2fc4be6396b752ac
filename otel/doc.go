// Package wsotel reports a wssafe Endpoint's metrics through
// OpenTelemetry. It is its own module, on the OpenTelemetry metrics API
// only, so that the core never depends on OpenTelemetry and a program
// that does not use it pulls none of it.
//
//	m, err := wsotel.New(wsotel.Options{MeterProvider: mp}) // nil: otel.GetMeterProvider()
//	if err != nil { ... }
//	opts.Observer = wssafe.Observers(m.Observe, mine) // mine may be nil
//	ep, err := wssafe.New(h, opts)
//	if err != nil { ... }
//	m.Attach(ep)
//
// The counters and gauges are observable instruments whose callback reads
// Endpoint.Stats once per collection: they cost nothing per message. The
// histograms are recorded by [Metrics.Observe] (session, handler and
// handshake durations, received message sizes), which allocates nothing.
//
// # Cost per message
//
// Each message handled costs two synchronous Records (handler duration
// and message size), without attributes, on context.Background: with the
// SDK, about 300-450 ns together, most of it the SDK's per-Record work
// (attribute-set lookup, bucket search, and the exemplar filter, which by
// default asks the context for a sampled span at every Record). A program
// that does not use exemplars saves about a quarter of that by turning
// them off on its MeterProvider:
//
//	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r),
//		sdkmetric.WithExemplarFilter(exemplar.AlwaysOffFilter)) // or OTEL_METRICS_EXEMPLAR_FILTER=always_off
//
// and a View with sdkmetric.AggregationDrop on wssafe.server.handler.duration
// or wssafe.server.message.size removes nearly all of that histogram's cost.
//
// # Attributes
//
// No attribute has an unbounded value: never a subject, an address, a
// session, a topic, a path or a token. Reasons and codes come from fixed
// sets (the core's Event constants and authentication reasons, the Redis
// backplane's drop and refusal reasons); any other value is reported as
// "other", and so is a close code outside the registered ones (a client's
// private 4000-4999 code, say). See README.md for the list of instruments.
package wsotel
