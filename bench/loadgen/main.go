// Command loadgen is the benchmark's load generator for the toolwire path: many concurrent Chat
// streams on the raw generated stub, each text delta stamped on arrival, and one JSON object of
// figures on stdout. It exists because a Python grpc.aio consumer costs ~170 us of CPU per message,
// which at thousands of messages per second makes the consumer, not the relay, the bottleneck.
//
//	loadgen -target 127.0.0.1:PORT -model openai/bench-60x50ms -streams 500 [-rounds 1]
//
// All streams start at once; each runs -rounds chats one after another. The chunk format is the
// fake provider's (bench/fake_provider.py): the figures are exact, on one clock. Deltas are only
// stamped and kept while the chats run; parsing and statistics come after the last chat ends, and
// cpu_seconds is the process's user+sys CPU at that moment (what competed with the measured relay).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	toolwirev1 "github.com/toolwire/toolwire/clients/go/toolwire/v1"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

const maxErrors = 5 // error strings kept in the output

// delta is one TextDelta as it arrived.
type delta struct {
	at   int64 // arrival, Unix ns
	text string
}

// toolRound is a ToolResult sent, and how many deltas had arrived by then: the next `R` token after
// that point is the follow-up request reaching the provider.
type toolRound struct {
	deltas int
	sent   int64
}

// chat is what one chat saw.
type chat struct {
	started int64
	deltas  []delta
	tools   []toolRound
	events  int // every ChatResponse received
	err     string
}

func main() {
	target := flag.String("target", "127.0.0.1:50051", "the toolwire server, host:port")
	model := flag.String("model", "openai/bench-60x50ms", "the model, e.g. openai/bench-60x50ms")
	streams := flag.Int("streams", 1, "concurrent chat streams, all started at once")
	rounds := flag.Int("rounds", 1, "chats each stream runs one after another")
	toolResult := flag.String("tool-result", `{"value": 42}`, "the content answering every ToolRequest")
	stampResults := flag.Bool("stamp-tool-results", false, "answer every ToolRequest with "+
		"`{\"sent_ns\": <Unix ns when it was sent>}` instead of -tool-result, so that the server can "+
		"time the gRPC leg of the tool round trip (bench/floor_server.py does)")
	timeout := flag.Duration("timeout", 10*time.Minute, "the whole run's limit")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the chats to this file")
	connections := flag.Int("connections", 1, "gRPC connections, streams spread round-robin over them "+
		"(a server with --workers N spreads connections, not calls, over its processes)")
	ramp := flag.Duration("ramp", 0, "start the streams evenly spread over this time, not all at once")
	coalesceMs := flag.Int("coalesce-ms", 0, "ChatStart.text_coalesce_window in ms: the server holds text "+
		"that long after each TextDelta to send fewer, larger ones (0: no window)")
	warmup := flag.Int("warmup", 0, "each stream's first chats left out of the figures (still run, "+
		"and a failure still counts): with -ramp, the figures then cover all streams running at once")
	flag.Parse()
	if *streams < 1 || *rounds < 1 || *connections < 1 {
		fail("-streams, -rounds and -connections must be at least 1")
	}
	if *coalesceMs < 0 {
		fail("-coalesce-ms must not be negative")
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	// Fixed flow-control windows: grpc-go's dynamic window sends a BDP ping with data it receives,
	// which the server must answer and this process must write (a syscall each): load that is
	// neither the relay's nor a chat's. Fixed windows this large never hold a benchmark stream back.
	clients := make([]toolwirev1.ChatServiceClient, *connections)
	for index := range clients {
		conn, err := grpc.NewClient(*target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(1<<20),
			grpc.WithInitialConnWindowSize(1<<24),
		)
		if err != nil {
			fail(err.Error())
		}
		defer func() { _ = conn.Close() }()
		if err := connect(ctx, conn, 10*time.Second); err != nil { // not in the first chat's TTFT
			fail(fmt.Sprintf("connecting to %s: %v", *target, err))
		}
		clients[index] = toolwirev1.NewChatServiceClient(conn)
	}
	request := startRequest(*model, time.Duration(*coalesceMs)*time.Millisecond)

	chats := make([][]*chat, *streams)
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for i := range chats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			time.Sleep(time.Duration(i) * *ramp / time.Duration(len(chats)))
			for range *rounds {
				chats[i] = append(chats[i], runChat(ctx, clients[i%len(clients)], request, *toolResult, *stampResults))
			}
		}()
	}
	stopProfile := func() {}
	if *cpuProfile != "" {
		var err error
		if stopProfile, err = profile(*cpuProfile); err != nil {
			fail(err.Error())
		}
	}
	started := time.Now()
	close(begin)
	wg.Wait()
	stopProfile()
	wall := time.Since(started).Seconds()
	cpu := cpuSeconds()

	out := analyze(chats, chunksOf(*model), *warmup)
	out.Streams, out.Model, out.Rounds = *streams, *model, *rounds
	out.CPUSeconds, out.WallSeconds = round3(cpu), round3(wall)
	if out.Messages > 0 {
		perMessage := round3(cpu / float64(out.AllMessages) * 1e6)
		chunksPerMessage := round3(float64(out.Chunks) / float64(out.Messages))
		out.CPUMicrosPerMessage, out.ChunksPerMessage = &perMessage, &chunksPerMessage
	}
	encoder := json.NewEncoder(os.Stdout)
	if err := encoder.Encode(out); err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, "loadgen:", message)
	os.Exit(2)
}

func profile(path string) (stop func(), err error) {
	file, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(file); err != nil {
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = file.Close() }, nil
}

// connect waits until the channel is ready, at most limit.
func connect(ctx context.Context, conn *grpc.ClientConn, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	conn.Connect()
	for {
		state := conn.GetState()
		if state == connectivity.Ready {
			return nil
		}
		if !conn.WaitForStateChange(ctx, state) {
			return ctx.Err()
		}
	}
}

// startRequest is the ChatStart of every chat; a window of 0 leaves text_coalesce_window unset.
func startRequest(model string, coalesceWindow time.Duration) *toolwirev1.ChatRequest {
	start := &toolwirev1.ChatStart{
		Model:    model,
		Messages: []*toolwirev1.Message{{Role: toolwirev1.Role_ROLE_USER, Content: "Benchmark me."}},
	}
	if coalesceWindow > 0 {
		start.TextCoalesceWindow = durationpb.New(coalesceWindow)
	}
	if strings.Contains(model, "-tool") {
		start.Tools = []*toolwirev1.ToolDefinition{
			{Name: "get_value", ParametersJsonSchema: `{"type":"object","properties":{}}`},
		}
	}
	return &toolwirev1.ChatRequest{Kind: &toolwirev1.ChatRequest_Start{Start: start}}
}

// runChat runs one chat to the end of its stream.
func runChat(
	ctx context.Context, client toolwirev1.ChatServiceClient, request *toolwirev1.ChatRequest, result string,
	stamp bool,
) *chat {
	c := &chat{deltas: make([]delta, 0, 64), started: time.Now().UnixNano()}
	stream, err := client.Chat(ctx)
	if err != nil {
		c.err = describe(err)
		return c
	}
	if err := stream.Send(request); err != nil {
		c.err = describe(receiveStatus(stream, err))
		return c
	}
	for {
		response, err := stream.Recv()
		if err == io.EOF {
			return c
		}
		if err != nil {
			c.err = describe(err)
			return c
		}
		c.events++
		switch event := response.Event.(type) {
		case *toolwirev1.ChatResponse_TextDelta:
			c.deltas = append(c.deltas, delta{at: time.Now().UnixNano(), text: event.TextDelta.Text})
		case *toolwirev1.ChatResponse_ToolRequest:
			sent := time.Now().UnixNano()
			answer := &toolwirev1.ChatRequest{Kind: &toolwirev1.ChatRequest_ToolResult{
				ToolResult: &toolwirev1.ToolResult{
					ToolCallId: event.ToolRequest.ToolCallId, Content: resultContent(result, stamp, sent),
				},
			}}
			if n := len(c.tools); n > 0 && c.tools[n-1].deltas == len(c.deltas) {
				c.tools[n-1].sent = sent // several calls in one turn: the last result is what counts
			} else {
				c.tools = append(c.tools, toolRound{deltas: len(c.deltas), sent: sent})
			}
			if err := stream.Send(answer); err != nil {
				c.err = describe(receiveStatus(stream, err))
				return c
			}
		case *toolwirev1.ChatResponse_Finish:
			if err := stream.CloseSend(); err != nil {
				c.err = describe(err)
				return c
			}
		}
	}
}

// resultContent is a ToolResult's content: `result`, or with `stamp` when it was sent (Unix ns), for
// a server that times the gRPC leg of the tool round trip (bench/floor_server.py).
func resultContent(result string, stamp bool, sentNs int64) string {
	if !stamp {
		return result
	}
	return fmt.Sprintf(`{"sent_ns": %d}`, sentNs)
}

// receiveStatus turns a failed Send (io.EOF: the server ended the stream) into the stream's status.
func receiveStatus(stream grpc.BidiStreamingClient[toolwirev1.ChatRequest, toolwirev1.ChatResponse], err error) error {
	if err != io.EOF {
		return err
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if err == io.EOF {
				return fmt.Errorf("the server ended the stream with OK before the chat's requests were sent")
			}
			return err
		}
	}
}

// describe writes a status as bench/run.py does: `INVALID_ARGUMENT: message`.
func describe(err error) string {
	s := status.Convert(err)
	return code.Code(s.Code()).String() + ": " + s.Message()
}

func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return math.NaN()
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()).Seconds()
}

var benchModel = regexp.MustCompile(`bench-(\d+)x`)

// chunksOf is the number of chunks in each response of a fake-provider model, 0 if unknown.
func chunksOf(model string) int {
	match := benchModel.FindStringSubmatch(model)
	if match == nil {
		return 0
	}
	n, _ := strconv.Atoi(match[1])
	return n
}

// --- figures ------------------------------------------------------------------------------------

type failures struct {
	Count  int      `json:"count"`
	Errors []string `json:"errors"`
}

type percentiles struct {
	P50 *float64 `json:"p50"`
	P99 *float64 `json:"p99"`
	Max *float64 `json:"max,omitempty"`
}

type output struct {
	Streams             int          `json:"streams"`
	Model               string       `json:"model"`
	Rounds              int          `json:"rounds"`
	Chats               int          `json:"chats"`
	Failed              failures     `json:"failed"`
	LostOrReordered     int          `json:"lost_or_reordered"`
	Malformed           int          `json:"malformed"`
	Chunks              int          `json:"chunks"`
	Messages            int          `json:"messages"`
	AllMessages         int          `json:"all_messages"` // warm-up chats' too
	Events              int          `json:"events"`
	ChunksPerMessage    *float64     `json:"chunks_per_message"` // null without messages
	LagMs               percentiles  `json:"lag_ms"`
	GapMs               percentiles  `json:"gap_ms"`
	TTFTMs              percentiles  `json:"ttft_ms"`
	StartToRequestMs    percentiles  `json:"start_to_request_ms"` // TTFT's first part: the chat's start (before its call opens) → its first request at the provider
	ToolToRequestMs     *percentiles `json:"tool_to_request_ms,omitempty"`
	CPUSeconds          float64      `json:"cpu_seconds"`
	CPUMicrosPerMessage *float64     `json:"cpu_us_per_message"` // every CPU second over text deltas
	WallSeconds         float64      `json:"wall_seconds"`
}

// analyze turns the chats into figures. A failed chat counts only in Failed, as in bench/run.py;
// each stream's first `warmup` chats count there and in AllMessages only.
func analyze(streams [][]*chat, chunks int, warmup int) output {
	var out output
	out.Failed.Errors = []string{}
	var s samples
	for _, chats := range streams {
		for index, c := range chats {
			out.AllMessages += len(c.deltas)
			if index < warmup && c.err == "" {
				continue
			}
			out.Chats++
			if c.err != "" {
				out.Failed.Count++
				if len(out.Failed.Errors) < maxErrors {
					out.Failed.Errors = append(out.Failed.Errors, c.err)
				}
				continue
			}
			out.Messages += len(c.deltas)
			out.Events += c.events
			s.add(c, chunks)
		}
	}
	out.Chunks, out.LostOrReordered, out.Malformed = s.chunks, s.lostOrReordered, s.malformed
	out.LagMs = summarize(s.lag, true)
	out.GapMs = summarize(s.gap, false)
	out.TTFTMs = summarize(s.ttft, false)
	out.StartToRequestMs = summarize(s.startToRequest, false)
	if len(s.tool) > 0 {
		figures := summarize(s.tool, false)
		out.ToolToRequestMs = &figures
	}
	return out
}

// samples collects the per-chunk and per-chat figures of the chats that completed.
type samples struct {
	lag, gap, ttft, tool               []float64
	startToRequest                     []float64 // each chat's first request: its arrival at the provider − the chat's start
	chunks, lostOrReordered, malformed int
	tokens                             []token // reused
}

// response is the state of the response being read: the chunks after one `R` token.
type response struct {
	open, bad, any   bool  // any: a chunk was read
	next             int   // the seq expected next
	prevSent, prevAt int64 // the previous chunk's send and arrival times
}

// close counts the response as lost or reordered unless it held chunks 0..chunks-1 in order
// (chunks 0: the count is unknown, only the order is checked).
func (r *response) close(s *samples, chunks int) {
	if r.open && (r.bad || (chunks > 0 && r.next != chunks)) {
		s.lostOrReordered++
	}
	*r = response{}
}

// add takes one completed chat. Every response must hold its chunks in order with none missing,
// and a chat must have one response more than it had tool rounds (each missing one counts once).
func (s *samples) add(c *chat, chunks int) {
	var r response
	responses, nextTool, first := 0, 0, true
	for i, d := range c.deltas {
		var malformed int
		s.tokens, malformed = parseDelta(d.text, s.tokens[:0])
		s.malformed += malformed
		for _, t := range s.tokens {
			if t.arrival {
				r.close(s, chunks)
				r.open = true
				responses++
				if responses == 1 {
					s.startToRequest = append(s.startToRequest, ms(t.ns-c.started))
				}
				for nextTool < len(c.tools) && c.tools[nextTool].deltas <= i {
					s.tool = append(s.tool, ms(t.ns-c.tools[nextTool].sent))
					nextTool++
				}
				continue
			}
			s.chunks++
			s.lag = append(s.lag, ms(d.at-t.ns))
			if first {
				s.ttft = append(s.ttft, ms(d.at-c.started))
				first = false
			}
			if !r.open { // a chunk before any `R` token
				r.open, r.bad = true, true
			}
			if t.seq != r.next {
				r.bad = true
			}
			if r.any {
				s.gap = append(s.gap, ms((d.at-r.prevAt)-(t.ns-r.prevSent)))
			}
			r.any, r.next, r.prevSent, r.prevAt = true, t.seq+1, t.ns, d.at
		}
	}
	r.close(s, chunks)
	if missing := len(c.tools) + 1 - responses; missing > 0 {
		s.lostOrReordered += missing
	}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// summarize gives exact percentiles over all samples, picked as bench/run.py's pct does.
func summarize(values []float64, withMax bool) percentiles {
	if len(values) == 0 {
		return percentiles{}
	}
	sort.Float64s(values)
	pick := func(q float64) *float64 {
		index := int(math.RoundToEven(q / 100 * float64(len(values)-1)))
		v := round3(values[min(len(values)-1, max(0, index))])
		return &v
	}
	figures := percentiles{P50: pick(50), P99: pick(99)}
	if withMax {
		figures.Max = pick(100)
	}
	return figures
}
