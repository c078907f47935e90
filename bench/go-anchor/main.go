// The Go client as the bench's anchor: bench/workload.ts's messages (same JSON,
// X-* headers, Nats-Msg-Id, subjects) sent with PublishAsync under a bounded
// window, consumed with Fetch(500) + Ack on one unfiltered durable per stream.
// It only moves and times messages; the Node bench's checker judges them (from
// -observed, written after the clock stopped). Built by bench/go-anchor.ts.
package main

import (
	"bytes"
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

type envelope struct {
	EventID      string `json:"eventId"`
	AggregateID  string `json:"aggregateId"`
	EventType    string `json:"eventType"`
	EventVersion int    `json:"eventVersion"`
	Timestamp    string `json:"timestamp"`
	Payload      struct {
		Amount   int    `json:"amount"`
		Currency string `json:"currency"`
		Note     string `json:"note"`
	} `json:"payload"`
}

type handled struct {
	eventID, aggregateID string
	version              int
}

type config struct {
	url, mode, prefix, observed, durable string
	topics, streams                      []string
	n, aggregates, payloadBytes, window  int
}

func main() {
	var c config
	flag.StringVar(&c.url, "url", "nats://127.0.0.1:4222", "server URL")
	flag.StringVar(&c.mode, "mode", "publish", "publish | consume | e2e")
	flag.StringVar(&c.prefix, "prefix", "go-", "event id prefix")
	flag.StringVar(&c.observed, "observed", "", "file receiving handled events (consume, e2e)")
	flag.StringVar(&c.durable, "durable", "bench-go", "durable consumer name")
	flag.Func("topics", "comma-separated topics (subjects)", func(s string) error { c.topics = strings.Split(s, ","); return nil })
	flag.Func("streams", "comma-separated stream names, one per topic", func(s string) error { c.streams = strings.Split(s, ","); return nil })
	flag.IntVar(&c.n, "n", 10000, "messages")
	flag.IntVar(&c.aggregates, "aggregates", 1000, "aggregates")
	flag.IntVar(&c.payloadBytes, "payload", 256, "payload JSON size in bytes")
	flag.IntVar(&c.window, "window", 5000, "PublishAsync max pending")
	flag.Parse()
	if c.mode != "publish" && c.mode != "consume" && c.mode != "e2e" {
		check(fmt.Errorf("unknown -mode %q", c.mode), "flags")
	}

	// Publisher and subscriber on their own connections, like the Node pairs.
	pubNc, pubJs := connect(c.url, "bench-go-pub", nats.PublishAsyncMaxPending(c.window))
	defer pubNc.Close()
	var subs []*nats.Subscription
	counts := make([]int, len(c.topics))
	var start time.Time
	if c.mode != "publish" {
		subNc, subJs := connect(c.url, "bench-go-sub")
		defer subNc.Close() // Close flushes the last acks
		start = time.Now()
		// One unfiltered explicit-ack durable per stream, as a raw user reading the whole stream.
		for _, stream := range c.streams {
			_, err := subJs.AddConsumer(stream, &nats.ConsumerConfig{Durable: c.durable, AckPolicy: nats.AckExplicitPolicy})
			check(err, "add consumer on "+stream)
			sub, err := subJs.PullSubscribe("", c.durable, nats.Bind(stream, c.durable))
			check(err, "pull subscribe on "+stream)
			subs = append(subs, sub)
		}
		for a := 0; a < c.aggregates; a++ { // each stream's share: ceil((n-a)/A) per aggregate a
			counts[a%len(c.topics)] += (c.n - a + c.aggregates - 1) / c.aggregates
		}
	}
	if c.mode != "consume" {
		start = time.Now() // e2e: the clock starts at the first publish, consumers up
	}
	results := make([][]handled, len(subs))
	var wg sync.WaitGroup
	for t := range subs {
		wg.Add(1)
		go func(t int) { defer wg.Done(); results[t] = drain(subs[t], counts[t]) }(t)
	}
	published, failed := 0, 0
	if c.mode != "consume" {
		published, failed = publish(pubJs, c)
	}
	wg.Wait()
	elapsed := time.Since(start)

	var observed bytes.Buffer // "<eventId> <aggregateId> <version>" lines, each stream in handling order
	consumed := 0
	for _, r := range results {
		for _, h := range r {
			fmt.Fprintf(&observed, "%s %s %d\n", h.eventID, h.aggregateID, h.version)
		}
		consumed += len(r)
	}
	if c.observed != "" {
		check(os.WriteFile(c.observed, observed.Bytes(), 0o666), "write -observed")
	}
	check(json.NewEncoder(os.Stdout).Encode(map[string]any{"elapsedMs": float64(elapsed.Microseconds()) / 1000,
		"published": published, "failed": failed, "consumed": consumed}), "write result")
}

func check(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "go-anchor: %s: %v\n", what, err)
		os.Exit(1)
	}
}

func connect(url, name string, opts ...nats.JSOpt) (*nats.Conn, nats.JetStreamContext) {
	nc, err := nats.Connect(url, nats.Name(name))
	check(err, "connect")
	js, err := nc.JetStream(opts...)
	check(err, "jetstream")
	return nc, js
}

// publish sends messages 0..n-1 with at most -window unacknowledged and waits
// for every PubAck; one whose PubAck is an error is resent up to 3 times with
// the same Nats-Msg-Id (the server drops a stored copy), as our bus does.
func publish(js nats.JetStreamContext, c config) (ok, failed int) {
	var env envelope
	env.EventType, env.Payload.Amount, env.Payload.Currency = "BenchEvent", 1234, "EUR"
	env.Payload.Note = strings.Repeat("x", c.payloadBytes-len(`{"amount":1234,"currency":"EUR","note":""}`))
	pending := make([]*nats.Msg, c.n)
	for i := range pending {
		a := i % c.aggregates
		env.EventID, env.AggregateID, env.EventVersion = c.prefix+strconv.Itoa(i), "agg-"+strconv.Itoa(a), i/c.aggregates
		env.Timestamp = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		data, _ := json.Marshal(env)
		pending[i] = &nats.Msg{Subject: c.topics[a%len(c.topics)], Data: data, Header: nats.Header{
			"X-Event-ID": {env.EventID}, "X-Aggregate-ID": {env.AggregateID}, "X-Event-Type": {env.EventType},
			"X-Event-Version": {strconv.Itoa(env.EventVersion)}, "X-Timestamp": {env.Timestamp}, nats.MsgIdHdr: {env.EventID},
		}}
	}
	for attempt := 0; attempt < 4 && len(pending) > 0; attempt++ {
		futures := make([]nats.PubAckFuture, 0, len(pending))
		var retry []*nats.Msg
		for _, m := range pending {
			if f, err := js.PublishMsgAsync(m); err != nil {
				retry = append(retry, m)
			} else {
				futures = append(futures, f)
			}
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

// drain fetches, decodes and acks until the stream's share arrived; a minute
// without messages ends it, so that a loss shows in the checker.
func drain(sub *nats.Subscription, expected int) []handled {
	out := make([]handled, 0, expected)
	for idle := 0; len(out) < expected && idle < 30; {
		msgs, err := sub.Fetch(500, nats.MaxWait(2*time.Second))
		if err != nil && len(msgs) == 0 {
			idle++
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
