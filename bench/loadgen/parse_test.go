package main

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestParseDelta(t *testing.T) {
	cases := []struct {
		name      string
		text      string
		want      []token
		malformed int
	}{
		{"one chunk", "7@1700000000000000123|", []token{{seq: 7, ns: 1700000000000000123}}, 0},
		{
			"first chunk of a response, with its R token",
			"R1700000000000000001|0@1700000000000000002|",
			[]token{{arrival: true, ns: 1700000000000000001}, {seq: 0, ns: 1700000000000000002}},
			0,
		},
		{
			"merged deltas",
			"1@100|2@200|3@300|",
			[]token{{seq: 1, ns: 100}, {seq: 2, ns: 200}, {seq: 3, ns: 300}},
			0,
		},
		{
			"merged across a response boundary",
			"59@500|R600|0@700|",
			[]token{{seq: 59, ns: 500}, {arrival: true, ns: 600}, {seq: 0, ns: 700}},
			0,
		},
		{"a trailing partial token", "1@100|2@2", []token{{seq: 1, ns: 100}}, 1},
		{"only a partial token", "R12", nil, 1},
		{"garbage between tokens", "1@100|hello|x@1|R|2@200|", []token{{seq: 1, ns: 100}, {seq: 2, ns: 200}}, 3},
		{"empty", "", nil, 0},
		{"empty pieces are skipped", "|1@100||", []token{{seq: 1, ns: 100}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, malformed := parseDelta(c.text, nil)
			if !reflect.DeepEqual(got, c.want) || malformed != c.malformed {
				t.Fatalf("parseDelta(%q) = %+v, %d malformed; want %+v, %d", c.text, got, malformed, c.want, c.malformed)
			}
		})
	}
}

func TestParseDeltaAppends(t *testing.T) {
	out, _ := parseDelta("1@1|", []token{{seq: 0, ns: 0}})
	if len(out) != 2 || out[1].seq != 1 {
		t.Fatalf("got %+v", out)
	}
}

func TestAnalyze(t *testing.T) {
	ok := &chat{started: 0, deltas: []delta{
		{at: 1_000_000, text: "R100|0@500000|"},
		{at: 3_000_000, text: "1@1500000|2@2000000|"},
	}}
	short := &chat{deltas: []delta{{at: 10, text: "R1|0@1|2@2|"}}}
	tool := &chat{
		deltas: []delta{{at: 10, text: "R1|0@1|1@2|2@3|"}, {at: 20, text: "R4000015|0@4|1@5|2@6|"}},
		tools:  []toolRound{{deltas: 1, sent: 15}},
	}
	missingResponse := &chat{
		deltas: []delta{{at: 10, text: "R1|0@1|1@2|2@3|"}},
		tools:  []toolRound{{deltas: 1, sent: 15}},
	}
	failed := &chat{err: "UNAVAILABLE: gone"}
	out := analyze([][]*chat{{ok, short}, {tool, missingResponse, failed}}, 3, 0)
	if out.Chats != 5 || out.Failed.Count != 1 || out.Failed.Errors[0] != "UNAVAILABLE: gone" {
		t.Fatalf("chats/failed: %+v", out)
	}
	if out.LostOrReordered != 2 { // short (seq 1 missing), and the missing response
		t.Fatalf("lost_or_reordered = %d", out.LostOrReordered)
	}
	if out.Chunks != 3+2+6+3 || out.Messages != 2+1+2+1 {
		t.Fatalf("chunks %d, messages %d", out.Chunks, out.Messages)
	}
	if out.ToolToRequestMs == nil || *out.ToolToRequestMs.P50 != 4 {
		t.Fatalf("tool_to_request_ms = %+v", out.ToolToRequestMs)
	}
}

func TestStartToRequestIsTheFirstRequestOfEachChatOnly(t *testing.T) {
	// Two chats started at 1 ms and 2 ms whose first requests reached the provider 3 ms and 9 ms
	// later; the second chat's follow-up request (after a tool round) is not a start.
	first := &chat{started: 1_000_000, deltas: []delta{{at: 5_000_000, text: "R4000000|0@4500000|"}}}
	second := &chat{
		started: 2_000_000,
		deltas: []delta{
			{at: 12_000_000, text: "R11000000|0@11500000|"},
			{at: 40_000_000, text: "R39000000|0@39500000|"},
		},
		tools: []toolRound{{deltas: 1, sent: 30_000_000}},
	}
	out := analyze([][]*chat{{first}, {second}}, 1, 0)
	if *out.StartToRequestMs.P50 != 3 && *out.StartToRequestMs.P50 != 9 {
		t.Fatalf("start_to_request_ms p50 = %v", *out.StartToRequestMs.P50)
	}
	if *out.StartToRequestMs.P99 != 9 {
		t.Fatalf("start_to_request_ms p99 = %v, want 9 (the follow-up's 37 is not a start)", *out.StartToRequestMs.P99)
	}
}

func TestAnalyzeLeavesWarmupChatsOutButCountsTheirFailures(t *testing.T) {
	good := func() *chat { return &chat{deltas: []delta{{at: 10, text: "R1|0@1|1@2|"}}} }
	warmupFailed := &chat{err: "UNAVAILABLE: gone"}
	out := analyze([][]*chat{{good(), good()}, {warmupFailed, good()}}, 2, 1)
	if out.Chats != 3 || out.Failed.Count != 1 {
		t.Fatalf("chats %d, failed %d: a warm-up failure must count, a warm-up success must not", out.Chats, out.Failed.Count)
	}
	if out.Messages != 2 || out.AllMessages != 3 || out.Chunks != 4 {
		t.Fatalf("messages %d, all %d, chunks %d", out.Messages, out.AllMessages, out.Chunks)
	}
}

func TestResultContentCarriesTheSendTimeOnlyWhenStamped(t *testing.T) {
	if got := resultContent(`{"value": 42}`, false, 1796000000000000001); got != `{"value": 42}` {
		t.Errorf("unstamped: %s", got)
	}
	var stamped struct {
		SentNs int64 `json:"sent_ns"`
	}
	if err := json.Unmarshal([]byte(resultContent(`{"value": 42}`, true, 1796000000000000001)), &stamped); err != nil {
		t.Fatal(err)
	}
	if stamped.SentNs != 1796000000000000001 {
		t.Errorf("stamped: sent_ns %d", stamped.SentNs)
	}
}
