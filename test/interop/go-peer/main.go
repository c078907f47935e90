// go-peer publishes and consumes envelopes the way the Go SDK (jxt-core
// sdk/pkg/eventbus, see ../shared/reference/) does, for the interop test
// in ../go-fleet.test.ts. It depends on nats.go only, so Debian's
// golang-github-nats-io-go-nats-dev builds it:
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o go-peer .
//
// publish: -events envelopes over -aggregates aggregates (event i belongs to
// aggregate i % aggregates, at version i / aggregates + 1), built and checked
// like the SDK's Envelope.ToBytes() and sent like its PublishEnvelope (X-*
// headers, Nats-Msg-Id = event_id, PublishMsgAsync). One JSON line per
// acknowledged event on stdout, then a summary line.
//
// consume: a durable pull consumer fetching batches of 10 (the SDK's loop).
// Each message goes through the SDK's FromBytes (json.Unmarshal + Validate):
// valid → AckSync, invalid → Nak (which is how a Go service loops for ever on
// an envelope it cannot accept). One JSON line per message, then a summary.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// Envelope is the Go SDK's envelope (reference notes, "type Envelope struct").
type Envelope struct {
	EventID       string          `json:"event_id,omitempty"`
	AggregateID   string          `json:"aggregate_id"`
	EventType     string          `json:"event_type"`
	EventVersion  int64           `json:"event_version"`
	Timestamp     time.Time       `json:"timestamp"`
	TraceID       string          `json:"trace_id,omitempty"`
	CorrelationID string          `json:"correlation_id,omitempty"`
	Payload       json.RawMessage `json:"payload"`
}

// Validate is the Go SDK's Envelope.Validate().
func (e *Envelope) Validate() error {
	if strings.TrimSpace(e.EventID) == "" {
		return errors.New("event_id is required")
	}
	if strings.TrimSpace(e.AggregateID) == "" {
		return errors.New("aggregate_id is required")
	}
	if strings.TrimSpace(e.EventType) == "" {
		return errors.New("event_type is required")
	}
	if e.EventVersion <= 0 {
		return errors.New("event_version must be positive")
	}
	if len(e.Payload) == 0 {
		return errors.New("payload is required")
	}
	if err := validateAggregateID(e.AggregateID); err != nil {
		return fmt.Errorf("invalid aggregate_id: %w", err)
	}
	return nil
}

// validateAggregateID is the Go SDK's aggregate id rule.
func validateAggregateID(id string) error {
	id = strings.TrimSpace(id)
	if id == "" {
		return errors.New("aggregate_id cannot be empty")
	}
	if len(id) > 256 {
		return errors.New("aggregate_id too long (max 256 characters)")
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == ':' || r == '_' || r == '-' || r == '.' || r == '/':
		default:
			return fmt.Errorf("aggregate_id contains invalid character: %c", r)
		}
	}
	return nil
}

// ToBytes is the Go SDK's Envelope.ToBytes().
func (e *Envelope) ToBytes() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(e)
}

// FromBytes is the Go SDK's FromBytes().
func FromBytes(data []byte) (*Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("failed to unmarshal envelope: %w", err)
	}
	if err := env.Validate(); err != nil {
		return nil, fmt.Errorf("invalid envelope: %w", err)
	}
	return &env, nil
}

// BigBase is 2^53 + 1: payload refs start beyond what a JS number holds exactly.
const BigBase int64 = 9007199254740993

type payload struct {
	Seq int   `json:"seq"`
	Ref int64 `json:"ref"`
}

type options struct {
	url, mode, subject, durable, headers, run string
	events, aggregates                        int
	timeout                                   time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", nats.DefaultURL, "NATS server URL")
	flag.StringVar(&o.mode, "mode", "", "publish or consume")
	flag.StringVar(&o.subject, "subject", "interop", "subject to publish to / consume from (the topic)")
	flag.StringVar(&o.durable, "durable", "go-peer", "durable consumer name (consume)")
	flag.StringVar(&o.run, "run", nuid.Next(), "publish: event ids are <run>-<i>, so the test knows them in advance")
	flag.StringVar(&o.headers, "headers", "all", "publish: X-* headers on all, none, or mixed (odd aggregates without)")
	flag.IntVar(&o.events, "events", 1000, "events to publish / distinct events to consume")
	flag.IntVar(&o.aggregates, "aggregates", 50, "aggregates the events are spread over (publish)")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "give up after this long")
	flag.Parse()

	nc, err := nats.Connect(o.url, nats.Name("go-peer"))
	if err != nil {
		fail("connect: %v", err)
	}
	defer nc.Close()
	out := json.NewEncoder(os.Stdout)
	switch o.mode {
	case "publish":
		err = publish(nc, o, out)
	case "consume":
		err = consume(nc, o, out)
	default:
		err = fmt.Errorf("unknown -mode %q (publish or consume)", o.mode)
	}
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-peer: "+format+"\n", args...)
	os.Exit(1)
}

func publish(nc *nats.Conn, o options, out *json.Encoder) error {
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(10000))
	if err != nil {
		return err
	}
	plus8 := time.FixedZone("", 8*3600)
	type sent struct {
		env    *Envelope
		future nats.PubAckFuture
	}
	pending := make([]sent, 0, o.events)
	for i := 0; i < o.events; i++ {
		body, _ := json.Marshal(payload{Seq: i, Ref: BigBase + int64(i)})
		now := time.Now()
		if i%2 == 1 {
			now = now.In(plus8) // Go writes the offset: +08:00
		}
		aggregate := i % o.aggregates
		env := &Envelope{
			EventID:      fmt.Sprintf("%s-%d", o.run, i),
			AggregateID:  fmt.Sprintf("go-agg-%02d", aggregate),
			EventType:    "GoEvent",
			EventVersion: int64(i/o.aggregates + 1),
			Timestamp:    now,
			Payload:      body,
		}
		if i%3 == 0 {
			env.CorrelationID = "corr-" + env.EventID
		}
		data, err := env.ToBytes()
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		msg := &nats.Msg{Subject: o.subject, Data: data, Header: nats.Header{}}
		if o.headers == "all" || (o.headers == "mixed" && aggregate%2 == 0) {
			msg.Header.Set("X-Aggregate-ID", env.AggregateID)
			msg.Header.Set("X-Event-Type", env.EventType)
			msg.Header.Set("X-Event-Version", fmt.Sprintf("%d", env.EventVersion))
			msg.Header.Set("X-Timestamp", env.Timestamp.Format(time.RFC3339))
			msg.Header.Set("X-Event-ID", env.EventID)
			if env.CorrelationID != "" {
				msg.Header.Set("X-Correlation-ID", env.CorrelationID)
			}
		}
		// The SDK always de-duplicates by event id.
		msg.Header.Set(nats.MsgIdHdr, env.EventID)
		future, err := js.PublishMsgAsync(msg)
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		pending = append(pending, sent{env, future})
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(o.timeout):
		return errors.New("timed out waiting for publish acks")
	}
	failed := 0
	for _, s := range pending {
		select {
		case <-s.future.Ok():
			_ = out.Encode(map[string]interface{}{
				"event_id": s.env.EventID, "aggregate_id": s.env.AggregateID, "event_version": s.env.EventVersion,
				"timestamp": s.env.Timestamp,
			})
		case err := <-s.future.Err():
			failed++
			fmt.Fprintf(os.Stderr, "go-peer: publish %s failed: %v\n", s.env.EventID, err)
		}
	}
	return out.Encode(map[string]interface{}{"summary": true, "published": len(pending) - failed, "failed": failed})
}

func consume(nc *nats.Conn, o options, out *json.Encoder) error {
	js, err := nc.JetStream()
	if err != nil {
		return err
	}
	// The stream is looked up by subject: whichever stream captures it.
	sub, err := js.PullSubscribe(o.subject, o.durable, nats.AckExplicit())
	if err != nil {
		return fmt.Errorf("pull subscribe %s: %w", o.subject, err)
	}
	seen := map[string]bool{}
	acked, rejected, redelivered := 0, 0, 0
	deadline := time.Now().Add(o.timeout)
	// A Go consumer naks an invalid envelope and gets it again at once: stop
	// after a few rejections instead of looping for ever, and report them.
	for len(seen) < o.events && rejected < 20 && time.Now().Before(deadline) {
		msgs, err := sub.Fetch(10, nats.MaxWait(time.Second))
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("fetch: %w", err)
		}
		for _, msg := range msgs {
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
			if meta.NumDelivered > 1 {
				redelivered++
			}
			env, err := FromBytes(msg.Data)
			if err != nil {
				rejected++
				_ = out.Encode(map[string]interface{}{"rejected": err.Error(), "delivered": meta.NumDelivered})
				_ = msg.Nak()
				continue
			}
			if err := msg.AckSync(); err != nil {
				return fmt.Errorf("ack %s: %w", env.EventID, err)
			}
			acked++
			seen[env.EventID] = true
			_ = out.Encode(map[string]interface{}{
				"event_id": env.EventID, "aggregate_id": env.AggregateID, "event_version": env.EventVersion,
				"timestamp": env.Timestamp.Format(time.RFC3339Nano), "payload": string(env.Payload),
				"delivered": meta.NumDelivered,
			})
		}
	}
	return out.Encode(map[string]interface{}{
		"summary": true, "received": len(seen), "acked": acked, "rejected": rejected, "redelivered": redelivered,
	})
}
