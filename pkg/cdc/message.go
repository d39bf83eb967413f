package cdc

import "time"

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Message is one Kafka record as oppsync received it: the unit that is
// decoded, applied, dead-lettered and committed.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time // broker append time (or producer time)
}

// HeaderValue returns the value of the first header named key.
func (m *Message) HeaderValue(key string) ([]byte, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}
