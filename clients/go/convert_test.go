package toolwire

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	toolwirev1 "github.com/toolwire/toolwire/clients/go/toolwire/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestEventFromProtoConvertsEveryKind(t *testing.T) {
	cases := []struct {
		response *toolwirev1.ChatResponse
		want     Event
	}{
		{&toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_Started{Started: &toolwirev1.ChatStarted{ChatId: "c1", Model: "scripted/echo"}}},
			&Started{ChatID: "c1", Model: "scripted/echo"}},
		{&toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_TextDelta{TextDelta: &toolwirev1.TextDelta{Text: "Hi", Round: 2}}},
			&TextDelta{Text: "Hi", Round: 2}},
		{&toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_ToolRequest{ToolRequest: &toolwirev1.ToolRequest{ToolCallId: "call_1", Name: "get_time", ArgumentsJson: ` {"city": "Rome"} `, Round: 1, TraceContext: map[string]string{"traceparent": "00-01-02-01"}}}},
			&ToolRequest{ToolCallID: "call_1", Name: "get_time", Arguments: json.RawMessage(`{"city": "Rome"}`), Round: 1, TraceContext: map[string]string{"traceparent": "00-01-02-01"}}},
		{&toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_ToolRequest{ToolRequest: &toolwirev1.ToolRequest{ToolCallId: "call_2", Name: "now"}}},
			&ToolRequest{ToolCallID: "call_2", Name: "now", Arguments: json.RawMessage(`{}`)}},
		{&toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_ToolArgumentsDelta{ToolArgumentsDelta: &toolwirev1.ToolArgumentsDelta{ToolCallId: "call_1", Name: "get_time", ArgumentsDelta: `{"ci`, Round: 1}}},
			&ToolArgumentsDelta{ToolCallID: "call_1", Name: "get_time", ArgumentsDelta: `{"ci`, Round: 1}},
		{&toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_ToolCallAbandoned{ToolCallAbandoned: &toolwirev1.ToolCallAbandoned{ToolCallId: "call_1", Reason: "timeout", Round: 1}}},
			&ToolCallAbandoned{ToolCallID: "call_1", Reason: "timeout", Round: 1}},
		{&toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_ToolCallRejected{ToolCallRejected: &toolwirev1.ToolCallRejected{ToolCallId: "call_9", Name: "launch_rocket", ArgumentsJson: "{", Reason: "Unknown tool", Round: 1}}},
			&ToolCallRejected{ToolCallID: "call_9", Name: "launch_rocket", ArgumentsJSON: "{", Reason: "Unknown tool", Round: 1}},
		{&toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_Usage{Usage: &toolwirev1.UsageUpdate{Round: 1, Usage: &toolwirev1.Usage{InputTokens: proto.Int64(0)}}}},
			&UsageUpdate{Round: 1, InputTokens: pointer(int64(0))}},
	}
	for _, each := range cases {
		got, err := eventFromProto(each.response)
		if err != nil || !reflect.DeepEqual(got, each.want) {
			t.Errorf("eventFromProto(%v) = %#v, %v; want %#v", each.response, got, err, each.want)
		}
	}
}

func TestEventFromProtoIgnoresAnUnknownKind(t *testing.T) {
	got, err := eventFromProto(&toolwirev1.ChatResponse{})
	if got != nil || err != nil {
		t.Errorf("eventFromProto(empty) = %#v, %v; want nil, nil", got, err)
	}
}

func TestToolRequestArgumentsMustBeAnObject(t *testing.T) {
	for _, arguments := range []string{"[1]", `"text"`, "{", "null"} {
		response := &toolwirev1.ChatResponse{Event: &toolwirev1.ChatResponse_ToolRequest{ToolRequest: &toolwirev1.ToolRequest{ToolCallId: "c", ArgumentsJson: arguments}}}
		if _, err := eventFromProto(response); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
			t.Errorf("arguments %s: error = %v, want one saying they are not a JSON object", arguments, err)
		}
	}
}

func TestFinishFromProto(t *testing.T) {
	finish, err := finishFromProto(&toolwirev1.ChatFinish{
		Reason:         toolwirev1.FinishReason_FINISH_REASON_MAX_TOOL_ROUNDS,
		Text:           "done",
		ToolsCalled:    []string{"get_time"},
		ChunksReceived: 7,
		Rounds:         3,
		Usage:          &toolwirev1.Usage{OutputTokens: proto.Int64(16)},
		Duration:       durationpb.New(12 * time.Millisecond),
		Messages: []*toolwirev1.Message{
			{Role: toolwirev1.Role_ROLE_ASSISTANT, ToolCalls: []*toolwirev1.ToolCall{{Id: "call_1", Name: "get_time", ArgumentsJson: "{}"}}},
			{Role: toolwirev1.Role_ROLE_TOOL, Content: "boom", ToolCallId: "call_1", IsError: true},
		},
		Model: "scripted/loop",
	})
	want := &Finish{
		Reason: FinishMaxToolRounds, Text: "done", ToolsCalled: []string{"get_time"}, ChunksReceived: 7, Rounds: 3,
		InputTokens: nil, OutputTokens: pointer(int64(16)), Duration: 12 * time.Millisecond,
		Messages: []Message{
			AssistantMessage("", ToolCall{ID: "call_1", Name: "get_time", Arguments: json.RawMessage("{}")}),
			ToolMessage("call_1", "boom", true),
		},
		Model: "scripted/loop",
	}
	if err != nil || !reflect.DeepEqual(finish, want) {
		t.Errorf("finishFromProto = %#v, %v; want %#v", finish, err, want)
	}
}

func TestFinishReasons(t *testing.T) {
	for number, want := range map[toolwirev1.FinishReason]FinishReason{
		toolwirev1.FinishReason_FINISH_REASON_STOP:           FinishStop,
		toolwirev1.FinishReason_FINISH_REASON_LENGTH:         FinishLength,
		toolwirev1.FinishReason_FINISH_REASON_CONTENT_FILTER: FinishContentFilter,
		toolwirev1.FinishReason_FINISH_REASON_OTHER:          FinishOther,
		toolwirev1.FinishReason(99):                          FinishOther,
	} {
		finish, err := finishFromProto(&toolwirev1.ChatFinish{Reason: number})
		if err != nil || finish.Reason != want {
			t.Errorf("reason %v = %q, %v; want %q", number, finish.Reason, err, want)
		}
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	messages := []Message{
		SystemMessage("Be brief."),
		UserMessage("Weather?"),
		AssistantMessage("Checking.", ToolCall{ID: "call_1", Name: "get_weather", Arguments: json.RawMessage(`{"location":"Paris"}`)}),
		ToolMessage("call_1", "sunny", false),
	}
	converted, err := messagesToProto(messages)
	if err != nil {
		t.Fatal(err)
	}
	back, err := messagesFromProto(converted)
	if err != nil || !reflect.DeepEqual(back, messages) {
		t.Errorf("round trip = %#v, %v; want %#v", back, err, messages)
	}
}

func TestMessagesWithUnknownRolesAreErrors(t *testing.T) {
	if _, err := messagesToProto([]Message{{Role: "robot"}}); err == nil || !strings.Contains(err.Error(), `"robot"`) {
		t.Errorf("messagesToProto(robot) error = %v", err)
	}
	if _, err := messagesFromProto([]*toolwirev1.Message{{}}); err == nil {
		t.Error("messagesFromProto(unset role) succeeded")
	}
}

func TestNewToolValidates(t *testing.T) {
	if _, err := NewTool("get_weather", "", `{"type": "object"}`, nil); err != nil {
		t.Errorf("a valid tool: %v", err)
	}
	if _, err := NewTool("no_arguments", "", "", nil); err != nil {
		t.Errorf("a tool without a schema: %v", err)
	}
	for name, schema := range map[string]string{"bad name!": "", "get_weather": "{not json", "list": "[]", "null": "null"} {
		if _, err := NewTool(name, "", schema, nil); err == nil {
			t.Errorf("NewTool(%q, %q) succeeded", name, schema)
		}
	}
}

func TestToolNamesMustBeUnique(t *testing.T) {
	tool := MustTool("get_time", "", "", nil)
	if _, err := toolsToProto([]Tool{tool, tool}); err == nil || !strings.Contains(err.Error(), "unique") {
		t.Errorf("error = %v, want one about unique names", err)
	}
}

func TestRunToolTurnsErrorsAndPanicsIntoErrorResults(t *testing.T) {
	cases := map[string]struct {
		function    ToolFunc
		wantContent string
		wantError   bool
	}{
		"result": {func(context.Context, json.RawMessage) (string, error) { return "ok", nil }, "ok", false},
		"error":  {func(context.Context, json.RawMessage) (string, error) { return "ignored", errors.New("down") }, "down", true},
		"panic":  {func(context.Context, json.RawMessage) (string, error) { panic("boom") }, "panic: boom", true},
	}
	for name, each := range cases {
		content, isError := runTool(t.Context(), each.function, json.RawMessage("{}"))
		if content != each.wantContent || isError != each.wantError {
			t.Errorf("%s: runTool = %q, %v; want %q, %v", name, content, isError, each.wantContent, each.wantError)
		}
	}
}

func TestOptionsSetTheChatStart(t *testing.T) {
	start := &toolwirev1.ChatStart{}
	for _, option := range []ChatOption{
		WithMaxToolRounds(2), WithToolTimeout(1500 * time.Millisecond), WithTemperature(0), WithTopP(0.5),
		WithMaxOutputTokens(100), WithStop("END"), WithToolChoice(ToolChoiceNamed("get_time")),
		WithParallelToolCalls(false), WithStreamToolArguments(), WithTextCoalesceWindow(30 * time.Millisecond),
	} {
		option(start)
	}
	want := &toolwirev1.ChatStart{
		MaxToolRounds: 2, ToolTimeout: durationpb.New(1500 * time.Millisecond), Temperature: proto.Float64(0), TopP: proto.Float64(0.5),
		MaxOutputTokens: 100, Stop: []string{"END"},
		ToolChoice:        &toolwirev1.ToolChoice{Mode: toolwirev1.ToolChoiceMode_TOOL_CHOICE_MODE_TOOL, ToolName: "get_time"},
		ParallelToolCalls: proto.Bool(false), StreamToolArguments: true, TextCoalesceWindow: durationpb.New(30 * time.Millisecond),
	}
	if !proto.Equal(start, want) {
		t.Errorf("start = %v, want %v", start, want)
	}
	WithToolChoice(ToolChoiceRequired)(start)
	if start.GetToolChoice().GetMode() != toolwirev1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED || start.GetToolChoice().GetToolName() != "" {
		t.Errorf("tool choice = %v, want required", start.GetToolChoice())
	}
}

func TestErrorFrom(t *testing.T) {
	unavailable := errorFrom(t.Context(), status.Error(codes.Unavailable, "the model is overloaded"))
	var typed *Error
	if !errors.As(unavailable, &typed) || typed.Code != codes.Unavailable || typed.Message != "the model is overloaded" {
		t.Errorf("errorFrom(UNAVAILABLE) = %#v", unavailable)
	}
	if status.Code(unavailable) != codes.Unavailable || unavailable.Error() != "Unavailable: the model is overloaded" {
		t.Errorf("status.Code = %v, Error() = %q", status.Code(unavailable), unavailable.Error())
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cancelled := errorFrom(ctx, status.Error(codes.Canceled, "context canceled"))
	if status.Code(cancelled) != codes.Canceled || !errors.Is(cancelled, context.Canceled) {
		t.Errorf("errorFrom(cancelled ctx) = %#v, want Canceled wrapping context.Canceled", cancelled)
	}
	if errorFrom(t.Context(), nil) != nil {
		t.Error("errorFrom(nil) is not nil")
	}
}

func pointer[T any](value T) *T {
	return &value
}
