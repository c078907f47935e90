// The Go client as the bench's physical anchor: the same workload as
// bench/workload.ts (same envelope JSON, X-* headers, Nats-Msg-Id, subjects),
// sent with nats.go's PublishAsync under a bounded window and consumed with
// Fetch(500) + Ack on one unfiltered durable per stream. It only moves and
// times messages; the Node bench judges the result with its order checker:
// publish runs are read back from the streams, consume and e2e runs write
// what they handled (after the clock stopped) to -observed.
//
// Built by bench/go-anchor.ts with Debian's golang-go and
// golang-github-nats-io-go-nats-dev (GOPATH=/usr/share/gocode GO111MODULE=off).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

type payload struct {
	Amount   int    `json:"amount"`
	Currency string `json:"currency"`
	Note     string `json:"note"`
}

type envelope struct {
	EventID      string  `json:"eventId"`
	AggregateID  string  `json:"aggregateId"`
	EventType    string  `json:"eventType"`
	EventVersion int     `json:"eventVersion"`
	Timestamp    string  `json:"timestamp"`
	Payload      payload `json:"payload"`
}

type handled struct {
	eventID     string
	aggregateID string
	version     int
}

type config struct {
	url, mode, prefix, observed, durable string
	topics, streams                      []string
	n, aggregates, payloadBytes, window  int
}

func main() {
	var c config
	var topics, streams string
	flag.StringVar(&c.url, "url", "nats://127.0.0.1:4222", "server URL")
	flag.StringVar(&c.mode, "mode", "publish", "publish | consume | e2e")
	flag.StringVar(&c.prefix, "prefix", "go-", "event id prefix")
	flag.StringVar(&c.observed, "observed", "", "file receiving handled events (consume, e2e)")
	flag.StringVar(&c.durable, "durable", "bench-go", "durable consumer name")
	flag.StringVar(&topics, "topics", "", "comma-separated topics (subjects)")
	flag.StringVar(&streams, "streams", "", "comma-separated stream names, one per topic")
	flag.IntVar(&c.n, "n", 10000, "messages")
	flag.IntVar(&c.aggregates, "aggregates", 1000, "aggregates")
	flag.IntVar(&c.payloadBytes, "payload", 256, "payload JSON size in bytes")
	flag.IntVar(&c.window, "window", 5000, "PublishAsync max pending")
	flag.Parse()
	c.topics = strings.Split(topics, ",")
	c.streams = strings.Split(streams, ",")
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "go-anchor:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	pubNc, err := nats.Connect(c.url, nats.Name("bench-go-pub"))
	if err != nil {
		return err
	}
	defer pubNc.Close()
	js, err := pubNc.JetStream(nats.PublishAsyncMaxPending(c.window))
	if err != nil {
		return err
	}
	var out []handled
	var elapsed time.Duration
	published, failed := 0, 0
	switch c.mode {
	case "publish":
		start := time.Now()
		published, failed = publish(js, c)
		elapsed = time.Since(start)
	case "consume", "e2e":
		subNc, err := nats.Connect(c.url, nats.Name("bench-go-sub"))
		if err != nil {
			return err
		}
		defer subNc.Close()
		subJs, err := subNc.JetStream()
		if err != nil {
			return err
		}
		start := time.Now()
		subs, err := subscribe(subJs, c)
		if err != nil {
			return err
		}
		if c.mode == "e2e" {
			start = time.Now() // the raw pairs' clocks start at the first publish, consumers up
		}
		var wg sync.WaitGroup
		results := make([][]handled, len(subs))
		for t, sub := range subs {
			wg.Add(1)
			go func(t int, sub *pull) {
				defer wg.Done()
				results[t] = sub.drain()
			}(t, sub)
		}
		if c.mode == "e2e" {
			published, failed = publish(js, c)
		}
		wg.Wait()
		elapsed = time.Since(start)
		for _, r := range results {
			out = append(out, r...)
		}
	default:
		return fmt.Errorf("unknown -mode %q", c.mode)
	}
	if c.observed != "" {
		if err := writeObserved(c.observed, out); err != nil {
			return err
		}
	}
	res, _ := json.Marshal(map[string]any{
		"elapsedMs": float64(elapsed.Microseconds()) / 1000,
		"published": published,
		"failed":    failed,
		"consumed":  len(out),
	})
	fmt.Println(string(res))
	return nil
}

// publish sends message i = 0..n-1 with PublishMsgAsync (at most -window
// unacknowledged) and waits for every PubAck. A publish whose PubAck came
// back as an error is sent again with the same Nats-Msg-Id (the server drops
// a copy it already stored), up to 3 times, as a careful user (and our bus)
// does; what still fails is reported.
func publish(js nats.JetStreamContext, c config) (ok, failed int) {
	note := strings.Repeat("x", c.payloadBytes-len(`{"amount":1234,"currency":"EUR","note":""}`))
	pending := make([]*nats.Msg, 0, c.n)
	for i := 0; i < c.n; i++ {
		a := i % c.aggregates
		env := envelope{
			EventID:      c.prefix + strconv.Itoa(i),
			AggregateID:  "agg-" + strconv.Itoa(a),
			EventType:    "BenchEvent",
			EventVersion: i / c.aggregates,
			Timestamp:    time.Now().UTC().Format("2006-01-02T15:04:05.000Z"),
			Payload:      payload{Amount: 1234, Currency: "EUR", Note: note},
		}
		data, _ := json.Marshal(env)
		m := nats.NewMsg(c.topics[a%len(c.topics)])
		m.Data = data
		m.Header.Set("X-Event-ID", env.EventID)
		m.Header.Set("X-Aggregate-ID", env.AggregateID)
		m.Header.Set("X-Event-Type", env.EventType)
		m.Header.Set("X-Event-Version", strconv.Itoa(env.EventVersion))
		m.Header.Set("X-Timestamp", env.Timestamp)
		m.Header.Set(nats.MsgIdHdr, env.EventID)
		pending = append(pending, m)
	}
	for attempt := 0; attempt < 4 && len(pending) > 0; attempt++ {
		futures := make([]nats.PubAckFuture, 0, len(pending))
		var retry []*nats.Msg
		for _, m := range pending {
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				retry = append(retry, m)
				continue
			}
			futures = append(futures, f)
		}
		<-js.PublishAsyncComplete()
		for _, f := range futures {
			select {
			case <-f.Ok():
				ok++
			case <-f.Err():
				retry = append(retry, f.Msg())
			}
		}
		pending = retry
	}
	return ok, len(pending)
}

type pull struct {
	sub      *nats.Subscription
	expected int
}

// subscribe creates one unfiltered explicit-ack durable per stream (what a
// raw user reading the whole stream does) and binds a pull subscription to it.
func subscribe(js nats.JetStreamContext, c config) ([]*pull, error) {
	counts := make([]int, len(c.topics))
	for a := 0; a < c.aggregates && a < c.n; a++ {
		per := c.n / c.aggregates
		if a < c.n%c.aggregates {
			per++
		}
		counts[a%len(c.topics)] += per
	}
	subs := make([]*pull, 0, len(c.streams))
	for t, stream := range c.streams {
		if _, err := js.AddConsumer(stream, &nats.ConsumerConfig{
			Durable:   c.durable,
			AckPolicy: nats.AckExplicitPolicy,
		}); err != nil {
			return nil, fmt.Errorf("add consumer on %s: %w", stream, err)
		}
		sub, err := js.PullSubscribe("", c.durable, nats.Bind(stream, c.durable))
		if err != nil {
			return nil, fmt.Errorf("pull subscribe on %s: %w", stream, err)
		}
		subs = append(subs, &pull{sub: sub, expected: counts[t]})
	}
	return subs, nil
}

// drain fetches batches of 500, decodes each envelope and acks it, until the
// stream's share arrived.
func (p *pull) drain() []handled {
	out := make([]handled, 0, p.expected)
	idle := 0
	for len(out) < p.expected && idle < 30 {
		msgs, err := p.sub.Fetch(500, nats.MaxWait(2*time.Second))
		if err != nil && len(msgs) == 0 {
			idle++ // nothing for 2 s; give up after a minute so a loss shows in the checker
			continue
		}
		idle = 0
		for _, m := range msgs {
			var env envelope
			if json.Unmarshal(m.Data, &env) == nil {
				out = append(out, handled{env.EventID, env.AggregateID, env.EventVersion})
			}
			_ = m.Ack()
		}
	}
	return out
}

func writeObserved(path string, out []handled) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, h := range out {
		fmt.Fprintf(w, "%s %s %d\n", h.eventID, h.aggregateID, h.version)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
