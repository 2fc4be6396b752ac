package bench_test

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wssafe/wssafe"
)

// The typed messages of the JSON benchmarks: a small chat line and a
// medium order (about 1 KiB, with a nested array of objects). Each has a
// Validate method of the usual kind.

type say struct {
	Type string `json:"type"`
	Room string `json:"room"`
	Text string `json:"text"`
}

func (s say) Validate() error {
	return cmp.Or(wssafe.Length("room", s.Room, 1, 64), wssafe.Length("text", s.Text, 1, 500))
}

// sayBody is say as a Router route sees it: the members beside "type".
type sayBody struct {
	Room string `json:"room"`
	Text string `json:"text"`
}

func (s sayBody) Validate() error { return say{Room: s.Room, Text: s.Text}.Validate() }

type item struct {
	SKU      string  `json:"sku"`
	Name     string  `json:"name"`
	Quantity int     `json:"quantity"`
	Price    float64 `json:"price"`
}

// orderBody is an order as the Router hands it over, without "type".
type orderBody struct {
	ID       string            `json:"id"`
	Customer string            `json:"customer"`
	Email    string            `json:"email"`
	Notes    string            `json:"notes"`
	Items    []item            `json:"items"`
	Tags     []string          `json:"tags"`
	Meta     map[string]string `json:"meta"`
}

func (o orderBody) Validate() error {
	if err := cmp.Or(wssafe.Length("id", o.ID, 1, 64), wssafe.Email("email", o.Email),
		wssafe.Length("notes", o.Notes, 0, 500)); err != nil {
		return err
	}
	for i, it := range o.Items {
		if err := wssafe.Range(fmt.Sprintf("items[%d].quantity", i), float64(it.Quantity), 1, 1000); err != nil {
			return err
		}
	}
	return nil
}

// order is the whole message, as JSON[T] decodes it; Validate is orderBody's.
type order struct {
	Type string `json:"type"`
	orderBody
}

// plainSay and plainOrder are say and order without a Validate method:
// with them the JSON rows measure the strict decode alone.
type plainSay say

type plainOrderBody orderBody

type plainOrder struct {
	Type string `json:"type"`
	plainOrderBody
}

var smallMessage = []byte(`{"type":"say","room":"lobby","text":"hello, world"}`)

var mediumMessage = func() []byte {
	o := order{Type: "order", orderBody: orderBody{ID: "ord-20261125-0001", Customer: "Ada Lovelace", Email: "ada@example.com",
		Notes: strings.Repeat("leave at the door, ", 8), Tags: []string{"priority", "gift", "fragile"},
		Meta: map[string]string{"channel": "web", "campaign": "autumn"}}}
	for i := range 8 {
		o.Items = append(o.Items, item{SKU: fmt.Sprintf("SKU-%05d", i), Name: "Analytical engine part", Quantity: i + 1, Price: 12.5})
	}
	b, err := json.Marshal(o)
	if err != nil {
		panic(err)
	}
	return b
}()

// jsonRow is one decoder of a BenchmarkJSON case.
type jsonRow struct {
	name   string
	decode func([]byte) error
}

// jsonCases returns the messages of the JSON benchmarks, each with its
// decoders: plain json.Unmarshal (no limits, no strictness), json.Unmarshal
// then Validate, and the Handlers an application mounts, wssafe.JSON and a
// Router with one route (the envelope decoded, "type" removed, the rest
// decoded strictly); last wssafe.JSON of the same type without its
// Validate method, the strict decode alone.
func jsonCases() []struct {
	size string
	msg  []byte
	rows []jsonRow
} {
	ctx := context.Background()
	handler := func(h wssafe.Handler) func([]byte) error {
		return func(p []byte) error {
			return h.ServeMessage(ctx, nil, wssafe.Message{Type: wssafe.MessageText, Data: p})
		}
	}
	sayRouter, orderRouter := wssafe.NewRouter(), wssafe.NewRouter()
	wssafe.Route(sayRouter, "say", func(context.Context, *wssafe.Session, sayBody) error { return nil })
	wssafe.Route(orderRouter, "order", func(context.Context, *wssafe.Session, orderBody) error { return nil })
	return []struct {
		size string
		msg  []byte
		rows []jsonRow
	}{
		{"small", smallMessage, []jsonRow{
			{"json.Unmarshal", func(p []byte) error { var v say; return json.Unmarshal(p, &v) }},
			{"json.Unmarshal+Validate", func(p []byte) error {
				var v say
				return cmp.Or(json.Unmarshal(p, &v), v.Validate())
			}},
			{"wssafe.JSON", handler(wssafe.JSON(func(context.Context, *wssafe.Session, say) error { return nil }))},
			{"wssafe.Router", handler(sayRouter)},
			{"wssafe.JSON-without-Validate", handler(wssafe.JSON(func(context.Context, *wssafe.Session, plainSay) error { return nil }))},
		}},
		{"medium", mediumMessage, []jsonRow{
			{"json.Unmarshal", func(p []byte) error { var v order; return json.Unmarshal(p, &v) }},
			{"json.Unmarshal+Validate", func(p []byte) error {
				var v order
				return cmp.Or(json.Unmarshal(p, &v), v.Validate())
			}},
			{"wssafe.JSON", handler(wssafe.JSON(func(context.Context, *wssafe.Session, order) error { return nil }))},
			{"wssafe.Router", handler(orderRouter)},
			{"wssafe.JSON-without-Validate", handler(wssafe.JSON(func(context.Context, *wssafe.Session, plainOrder) error { return nil }))},
		}},
	}
}

// BenchmarkJSON decodes a small (about 50 B) and a medium (about 1 KiB)
// message with each decoder of jsonCases. Every wssafe row does the whole
// check: UTF-8, the structure limits, duplicate keys in any case, unknown
// fields, trailing data, Validate.
func BenchmarkJSON(b *testing.B) {
	for _, c := range jsonCases() {
		for _, row := range c.rows {
			b.Run(fmt.Sprintf("%s/decoder=%s", c.size, row.name), func(b *testing.B) {
				b.SetBytes(int64(len(c.msg)))
				b.ReportAllocs()
				for b.Loop() {
					if err := row.decode(c.msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkJSONRatio reports what each wssafe decoder costs per message
// relative to json.Unmarshal ("x-unmarshal") and to json.Unmarshal then
// Validate ("x-unmarshal+validate") of the same message, measured in
// interleaved rounds (each op is one round of 32 decodes with each of the
// three, in rotating order) and given as the median of the per-round
// ratios, so that a neighbour's load that slows the machine for a while
// moves both sides of a ratio alike.
func BenchmarkJSONRatio(b *testing.B) {
	const perRound = 32
	for _, c := range jsonCases() {
		for _, row := range c.rows[2:] {
			b.Run(fmt.Sprintf("%s/decoder=%s", c.size, row.name), func(b *testing.B) {
				rows := []jsonRow{c.rows[0], c.rows[1], row}
				var ratios [2][]float64
				round := 0
				for b.Loop() {
					var took [3]time.Duration
					for k := range rows {
						k = (k + round) % len(rows)
						start := time.Now()
						for range perRound {
							if err := rows[k].decode(c.msg); err != nil {
								b.Fatal(err)
							}
						}
						took[k] = time.Since(start)
					}
					round++
					ratios[0] = append(ratios[0], float64(took[2])/float64(took[0]))
					ratios[1] = append(ratios[1], float64(took[2])/float64(took[1]))
				}
				b.ReportMetric(median(ratios[0]), "x-unmarshal")
				b.ReportMetric(median(ratios[1]), "x-unmarshal+validate")
			})
		}
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}
