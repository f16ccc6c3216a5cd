package toolwire_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toolwire "github.com/toolwire/toolwire/clients/go"
	"github.com/toolwire/toolwire/clients/go/toolwiretest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// safetyTimeout bounds every chat so a broken run fails instead of hanging; no test relies on it.
const safetyTimeout = 30 * time.Second

const weatherSchema = `{"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}`

// getWeather is a weather tool whose body the test chooses.
func getWeather(function toolwire.ToolFunc) toolwire.Tool {
	return toolwire.MustTool("get_weather", "Current weather for a place.", weatherSchema, function)
}

func sunnyWeather(_ context.Context, args json.RawMessage) (string, error) {
	var arguments struct{ Location string }
	if err := json.Unmarshal(args, &arguments); err != nil {
		return "", err
	}
	return fmt.Sprintf(`{"location": %q, "sky": "sunny"}`, arguments.Location), nil
}

var getTime = toolwire.MustTool("get_time", "Local time in a city.",
	`{"type": "object", "properties": {"city": {"type": "string"}}}`,
	func(_ context.Context, args json.RawMessage) (string, error) {
		var arguments struct{ City string }
		err := json.Unmarshal(args, &arguments)
		return "12:00 in " + arguments.City, err
	})

func weatherRequest(model string, tools ...toolwire.Tool) toolwire.ChatRequest {
	return toolwire.ChatRequest{
		Model:    model,
		Messages: []toolwire.Message{toolwire.UserMessage("What is the weather in Paris?")},
		Tools:    tools,
	}
}

// collect ranges over a whole chat; it fails the test on an error.
func collect(t *testing.T, client *toolwire.Client, request toolwire.ChatRequest, options ...toolwire.ChatOption) []toolwire.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), safetyTimeout)
	defer cancel()
	var events []toolwire.Event
	for event, err := range client.Chat(ctx, request, options...) {
		if err != nil {
			t.Fatalf("chat %s failed after %d events: %v", request.Model, len(events), err)
		}
		events = append(events, event)
	}
	if len(events) == 0 {
		t.Fatalf("chat %s yielded no events", request.Model)
	}
	return events
}

// only returns the events of type T, in order.
func only[T toolwire.Event](events []toolwire.Event) []T {
	var kept []T
	for _, event := range events {
		if typed, matches := event.(T); matches {
			kept = append(kept, typed)
		}
	}
	return kept
}

// finishOf returns the last event, which must be a Finish.
func finishOf(t *testing.T, events []toolwire.Event) *toolwire.Finish {
	t.Helper()
	finish, isFinish := events[len(events)-1].(*toolwire.Finish)
	if !isFinish {
		t.Fatalf("the last event is %T, want *toolwire.Finish", events[len(events)-1])
	}
	return finish
}

func dial(t *testing.T, target string) *toolwire.Client {
	t.Helper()
	client, err := toolwire.Dial(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return client
}

func run(t *testing.T, client *toolwire.Client, request toolwire.ChatRequest, options ...toolwire.ChatOption) (*toolwire.Finish, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), safetyTimeout)
	defer cancel()
	return client.Run(ctx, request, options...)
}

func mustRun(t *testing.T, client *toolwire.Client, request toolwire.ChatRequest, options ...toolwire.ChatOption) *toolwire.Finish {
	t.Helper()
	finish, err := run(t, client, request, options...)
	if err != nil {
		t.Fatalf("run %s: %v", request.Model, err)
	}
	return finish
}

func equal[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestScenarios runs the scenario list of tests/e2e/test_python_client.py, with its names, and
// a few more, against one real server.
func TestScenarios(t *testing.T) {
	server := toolwiretest.Start(t)
	client := dial(t, server.Target)
	for _, scenario := range []struct {
		name string
		run  func(t *testing.T, client *toolwire.Client, server *toolwiretest.Server)
	}{
		{"text_only", textOnly},
		{"one_tool_round", oneToolRound},
		{"two_parallel_calls_answered_out_of_order", twoParallelCallsAnsweredOutOfOrder},
		{"a_tool_that_throws", aToolThatThrows},
		{"an_unknown_tool_is_handled_by_the_server", anUnknownToolIsHandledByTheServer},
		{"a_chat_cancelled_mid_stream_leaves_the_server_healthy", aChatCancelledMidStreamLeavesTheServerHealthy},
		{"max_tool_rounds", maxToolRounds},
		{"a_server_error_surfaces_as_a_typed_error", aServerErrorSurfacesAsATypedError},
		{"manual_mode_answers_tool_requests_by_hand", manualModeAnswersToolRequestsByHand},
		{"chat_refuses_a_tool_without_a_function", chatRefusesAToolWithoutAFunction},
		{"a_tool_slower_than_the_timeout_is_abandoned", aToolSlowerThanTheTimeoutIsAbandoned},
		{"a_panicking_tool_becomes_an_error_result", aPanickingToolBecomesAnErrorResult},
		{"finish_messages_continue_the_conversation", finishMessagesContinueTheConversation},
		{"list_models", listModels},
		{"a_text_window_sends_fewer_larger_text_deltas", aTextWindowSendsFewerLargerTextDeltas},
		{"breaking_out_early_leaks_no_goroutine", breakingOutEarlyLeaksNoGoroutine},
		{"fifty_concurrent_chats", fiftyConcurrentChats},
		{"a_finish_over_4_mib_arrives", aFinishOver4MiBArrives},
		{"a_finish_over_the_receive_limit_is_resource_exhausted", aFinishOverTheReceiveLimitIsResourceExhausted},
		{"a_client_on_your_own_connection_takes_the_limit_option", aClientOnYourOwnConnectionTakesTheLimitOption},
	} {
		t.Run(scenario.name, func(t *testing.T) { scenario.run(t, client, server) })
	}
}

func textOnly(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	events := collect(t, client, weatherRequest("scripted/echo"))
	if started, isStarted := events[0].(*toolwire.Started); !isStarted || started.Model != "scripted/echo" {
		t.Errorf("first event = %#v, want Started for scripted/echo", events[0])
	}
	var text strings.Builder
	for _, delta := range only[*toolwire.TextDelta](events) {
		text.WriteString(delta.Text)
	}
	if text.String() != "What is the weather in Paris?" {
		t.Errorf("streamed text = %q", text.String())
	}
	finish := finishOf(t, events)
	if finish.Reason != toolwire.FinishStop || finish.Rounds != 1 || len(finish.ToolsCalled) != 0 {
		t.Errorf("finish = %s, %d rounds, tools %v; want stop, 1, none", finish.Reason, finish.Rounds, finish.ToolsCalled)
	}
	if finish.InputTokens != nil || finish.OutputTokens != nil {
		t.Errorf("the echo model reports no usage, got %v/%v", finish.InputTokens, finish.OutputTokens)
	}
}

func oneToolRound(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	events := collect(t, client, weatherRequest("scripted/weather", getWeather(sunnyWeather), getTime))
	requests := only[*toolwire.ToolRequest](events)
	if len(requests) != 1 || requests[0].Name != "get_weather" || string(requests[0].Arguments) != `{"location": "Paris"}` {
		t.Fatalf("tool requests = %+v, want one get_weather for Paris", requests)
	}
	sent := only[*toolwire.ToolResultSent](events)
	if len(sent) != 1 || sent[0].Content != `{"location": "Paris", "sky": "sunny"}` || sent[0].IsError {
		t.Errorf("results sent = %+v", sent)
	}
	finish := finishOf(t, events)
	if finish.Text != "It is sunny in Paris." || finish.Rounds != 2 {
		t.Errorf("finish = %q in %d rounds", finish.Text, finish.Rounds)
	}
	equal(t, "tools called", finish.ToolsCalled, []string{"get_weather"})
	if finish.InputTokens == nil || *finish.InputTokens != 52 || finish.OutputTokens == nil || *finish.OutputTokens != 16 {
		t.Errorf("usage = %v in / %v out, want 52 / 16", finish.InputTokens, finish.OutputTokens)
	}
	var roles []toolwire.Role
	for _, message := range finish.Messages {
		roles = append(roles, message.Role)
	}
	equal(t, "roles", roles, []toolwire.Role{toolwire.RoleAssistant, toolwire.RoleTool, toolwire.RoleAssistant})
	if finish.Messages[0].ToolCalls[0].ID != requests[0].ToolCallID {
		t.Errorf("the assistant's call id %q is not the request's %q", finish.Messages[0].ToolCalls[0].ID, requests[0].ToolCallID)
	}
}

func twoParallelCallsAnsweredOutOfOrder(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	timeSent := make(chan struct{})
	slowWeather := getWeather(func(ctx context.Context, _ json.RawMessage) (string, error) {
		select { // answers only after get_time's result was sent
		case <-timeSent:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "sunny", nil
	})
	var once sync.Once
	var events []toolwire.Event
	ctx, cancel := context.WithTimeout(t.Context(), safetyTimeout)
	defer cancel()
	for event, err := range client.Chat(ctx, weatherRequest("scripted/parallel", slowWeather, getTime)) {
		if err != nil {
			t.Fatal(err)
		}
		if sent, isSent := event.(*toolwire.ToolResultSent); isSent && sent.Name == "get_time" {
			once.Do(func() { close(timeSent) })
		}
		events = append(events, event)
	}
	var requested, sent []string
	for _, request := range only[*toolwire.ToolRequest](events) {
		requested = append(requested, request.Name)
	}
	for _, result := range only[*toolwire.ToolResultSent](events) {
		sent = append(sent, result.Name)
	}
	equal(t, "requests", requested, []string{"get_weather", "get_time"})
	equal(t, "results sent", sent, []string{"get_time", "get_weather"})
	results := map[string]string{}
	for _, message := range finishOf(t, events).Messages {
		if message.Role == toolwire.RoleTool {
			results[message.ToolCallID] = message.Content
		}
	}
	if fmt.Sprint(results) != fmt.Sprint(map[string]string{"call_w": "sunny", "call_t": "12:00 in Tokyo"}) {
		t.Errorf("tool messages = %v", results)
	}
}

func aToolThatThrows(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	failing := getWeather(func(context.Context, json.RawMessage) (string, error) {
		return "", errors.New("weather service down")
	})
	events := collect(t, client, weatherRequest("scripted/weather", failing))
	sent := only[*toolwire.ToolResultSent](events)
	if len(sent) != 1 || !sent[0].IsError || !strings.Contains(sent[0].Content, "weather service down") {
		t.Errorf("results sent = %+v, want one error result with the error text", sent)
	}
	finish := finishOf(t, events)
	if toolMessage := finish.Messages[1]; !toolMessage.IsError || !strings.Contains(toolMessage.Content, "weather service down") {
		t.Errorf("tool message = %+v", toolMessage)
	}
	if finish.Reason != toolwire.FinishStop {
		t.Errorf("reason = %s, want stop", finish.Reason)
	}
}

func anUnknownToolIsHandledByTheServer(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	events := collect(t, client, weatherRequest("scripted/unknown_tool", getWeather(sunnyWeather), getTime))
	if requests := only[*toolwire.ToolRequest](events); len(requests) != 0 {
		t.Errorf("tool requests = %+v, want none", requests)
	}
	rejected := only[*toolwire.ToolCallRejected](events)
	if len(rejected) != 1 || rejected[0].Name != "launch_rocket" || !strings.Contains(rejected[0].Reason, "Unknown tool") {
		t.Errorf("rejected = %+v, want launch_rocket as an unknown tool", rejected)
	}
	if text := finishOf(t, events).Text; text != "I cannot do that." {
		t.Errorf("final text = %q", text)
	}
}

func aChatCancelledMidStreamLeavesTheServerHealthy(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var lastError error
	deltas := 0
	for event, err := range client.Chat(ctx, weatherRequest("scripted/slow")) {
		if _, isDelta := event.(*toolwire.TextDelta); isDelta {
			deltas++
			cancel() // while the model is still streaming
		}
		lastError = err
	}
	if deltas != 1 || status.Code(lastError) != codes.Canceled || !errors.Is(lastError, context.Canceled) {
		t.Errorf("after %d text deltas the chat ended with %v, want a Canceled error wrapping context.Canceled", deltas, lastError)
	}
	checkHealthy(t, server.Target)
	if finish := mustRun(t, client, weatherRequest("scripted/weather", getWeather(sunnyWeather))); finish.Reason != toolwire.FinishStop {
		t.Errorf("the next chat finished with %s, want stop", finish.Reason)
	}
}

func maxToolRounds(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	finish := mustRun(t, client, weatherRequest("scripted/loop", getTime), toolwire.WithMaxToolRounds(2))
	if finish.Reason != toolwire.FinishMaxToolRounds || finish.Rounds != 3 {
		t.Errorf("finish = %s in %d rounds, want max_tool_rounds in 3", finish.Reason, finish.Rounds)
	}
	equal(t, "tools called", finish.ToolsCalled, []string{"get_time", "get_time"})
}

func aServerErrorSurfacesAsATypedError(t *testing.T, client *toolwire.Client, server *toolwiretest.Server) {
	_, err := run(t, client, weatherRequest("scripted/unavailable"))
	var typed *toolwire.Error
	if !errors.As(err, &typed) || typed.Code != codes.Unavailable || !strings.Contains(typed.Message, "the model is overloaded") {
		t.Errorf("error = %#v, want *toolwire.Error UNAVAILABLE about the overloaded model", err)
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("status.Code = %v, want Unavailable", status.Code(err))
	}
	_, err = run(t, client, weatherRequest("scripted/no_such_script"))
	if !errors.As(err, &typed) || typed.Code != codes.NotFound {
		t.Errorf("error = %v, want *toolwire.Error NOT_FOUND", err)
	}
}

// checkHealthy asks the server's grpc.health.v1 service for its status.
func checkHealthy(t *testing.T, target string) {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), safetyTimeout)
	defer cancel()
	health, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health = %v, %v; want SERVING", health.GetStatus(), err)
	}
}
