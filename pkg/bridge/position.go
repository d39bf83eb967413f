package bridge

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"github.com/segmentio/kafka-go"
)

// position is where a channel resumes, recovered from its records in Kafka.
type position struct {
	// after is the replay id to resume after (CUSTOM); nil: none stored.
	after []byte
	// written holds the replay ids (as strings of their bytes) of the
	// events after `after` that Kafka already holds: the subscription skips
	// them.
	written map[string]bool
}

// compareReplay orders replay ids as big-endian unsigned numbers.
func compareReplay(a, b []byte) int {
	a, b = bytes.TrimLeft(a, "\x00"), bytes.TrimLeft(b, "\x00")
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return bytes.Compare(a, b)
}

// tailRecord is one of the channel's records as recovery sees it.
type tailRecord struct {
	replay, committed []byte
}

func parseTail(m kafka.Message, channel string) (tailRecord, bool) {
	if ch, _ := header(m, HeaderChannel); ch != channel {
		return tailRecord{}, false
	}
	rh, ok := header(m, HeaderReplayID)
	if !ok {
		return tailRecord{}, false
	}
	replay, err := hex.DecodeString(rh)
	if err != nil || len(replay) == 0 {
		return tailRecord{}, false
	}
	ch, _ := header(m, HeaderCommitted)
	committed, err := hex.DecodeString(ch)
	if err != nil {
		return tailRecord{}, false
	}
	return tailRecord{replay: replay, committed: committed}, true
}

// recover reads the channel's position from the tails of the output
// topics (see the package doc). window is how many records are read at a
// time, backwards from the end of each partition.
func (b *Bridge) recover(ctx context.Context, channel string, window int64) (position, error) {
	parts, err := b.kafka.partitions(ctx, outputTopic(b.cfg.TopicPrefix, b.cfg.SchemasTopic))
	if err != nil {
		return position{}, err
	}
	// Per partition: the channel's records from the newest back to the
	// first whose committed is below the newest one's (those after it are
	// the only ones that can matter).
	var tails [][]tailRecord
	for _, p := range parts {
		var recs []tailRecord
		err := b.kafka.scanBack(ctx, p, window, func(m kafka.Message) bool {
			r, ok := parseTail(m, channel)
			if !ok {
				return true
			}
			recs = append(recs, r)
			return compareReplay(r.committed, recs[0].committed) >= 0
		})
		if err != nil {
			return position{}, fmt.Errorf("recovering the position of %s from %s[%d]: %w", channel, p.Topic, p.ID, err)
		}
		if len(recs) > 0 {
			tails = append(tails, recs)
		}
	}
	if len(tails) == 0 {
		return position{}, nil
	}
	var w []byte
	for _, recs := range tails {
		if compareReplay(recs[0].committed, w) > 0 {
			w = recs[0].committed
		}
	}
	if len(w) == 0 {
		// Only first events of subscriptions (written alone): resume after
		// the newest.
		var last []byte
		for _, recs := range tails {
			for _, r := range recs {
				if compareReplay(r.replay, last) > 0 {
					last = r.replay
				}
			}
		}
		return position{after: last}, nil
	}
	pos := position{after: w, written: map[string]bool{}}
	for _, recs := range tails {
		for _, r := range recs {
			if bytes.Equal(r.committed, w) {
				pos.written[string(r.replay)] = true
			}
		}
	}
	return pos, nil
}
