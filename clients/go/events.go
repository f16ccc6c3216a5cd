package toolwire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	toolwirev1 "github.com/toolwire/toolwire/clients/go/toolwire/v1"
)

// Event is one thing a chat yields: *Started, *TextDelta, *ToolArgumentsDelta, *ToolRequest,
// *ToolResultSent, *ToolCallAbandoned, *ToolCallRejected, *UsageUpdate or *Finish (the last).
// Use a type switch; the set is closed.
type Event interface {
	isEvent()
}

// Started is the first event of every chat.
type Started struct {
	// ChatID is the server's id for the chat, as it appears in the server's logs.
	ChatID string
	// Model is the model serving the chat.
	Model string
}

// TextDelta is a piece of the model's text, to append to what came before in the same round.
type TextDelta struct {
	// Text is the piece of text.
	Text string
	// Round is the model call (1-based) that produced it.
	Round int
}

// ToolArgumentsDelta is a piece of a tool call's arguments as the model writes them; sent only
// with WithStreamToolArguments. Informational: wait for the ToolRequest.
type ToolArgumentsDelta struct {
	// ToolCallID is the id the eventual ToolRequest or ToolCallRejected carries.
	ToolCallID string
	// Name is the tool's name as the model wrote it.
	Name string
	// ArgumentsDelta is the next piece of the arguments' JSON text; not JSON on its own.
	ArgumentsDelta string
	// Round is the model call (1-based) making the call.
	Round int
}

// ToolRequest is a tool call the model made. A tool with a Func is run automatically (a
// ToolResultSent follows); a tool without one is answered with Session.SendResult.
type ToolRequest struct {
	// ToolCallID is the id to answer.
	ToolCallID string
	// Name is the tool to run.
	Name string
	// Arguments is a JSON object that validates against the tool's schema.
	Arguments json.RawMessage
	// Round is the model call (1-based) that made the call.
	Round int
	// TraceContext is the W3C trace context (traceparent, tracestate) of the server's span for
	// this call; empty when the server does not trace. Tools with a Func get a span under it
	// automatically; for others, ContextWithToolTrace returns a ctx with it as parent.
	TraceContext map[string]string
}

// ToolResultSent says a tool with a Func ran and its result was sent to the server.
type ToolResultSent struct {
	// ToolCallID is the call answered.
	ToolCallID string
	// Name is the tool that ran.
	Name string
	// Content is the result sent: the tool's text, or its error's text when IsError.
	Content string
	// IsError is true when the tool returned an error or panicked.
	IsError bool
}

// ToolCallAbandoned says the server stopped waiting for a call's result (it timed out); a late
// result is not sent.
type ToolCallAbandoned struct {
	// ToolCallID is the abandoned call.
	ToolCallID string
	// Reason says why, e.g. that the tool timeout passed.
	Reason string
	// Round is the model call (1-based) that made the call.
	Round int
}

// ToolCallRejected is a tool call the server refused and answered itself (unknown tool,
// arguments that do not match the schema); nothing to do.
type ToolCallRejected struct {
	// ToolCallID is the call's id.
	ToolCallID string
	// Name is the tool's name as the model wrote it.
	Name string
	// ArgumentsJSON is the arguments as the model wrote them; possibly not JSON.
	ArgumentsJSON string
	// Reason is the error result the server gave the model instead.
	Reason string
	// Round is the model call (1-based) that made the call.
	Round int
}

// UsageUpdate is the token usage of one model call. A count the provider did not report is nil.
type UsageUpdate struct {
	// Round is the model call (1-based).
	Round int
	// InputTokens is the tokens the model read, or nil if unknown.
	InputTokens *int64
	// OutputTokens is the tokens the model wrote, or nil if unknown.
	OutputTokens *int64
}

// FinishReason says why a chat ended.
type FinishReason string

// The reasons a chat ends.
const (
	// FinishStop means the model finished its answer.
	FinishStop FinishReason = "stop"
	// FinishLength means the model hit the output token limit.
	FinishLength FinishReason = "length"
	// FinishMaxToolRounds means the model still wanted tools after the allowed tool rounds.
	FinishMaxToolRounds FinishReason = "max_tool_rounds"
	// FinishContentFilter means the provider withheld the rest of the answer.
	FinishContentFilter FinishReason = "content_filter"
	// FinishOther means the provider ended the turn for a reason toolwire does not name.
	FinishOther FinishReason = "other"
)

var finishReasons = map[toolwirev1.FinishReason]FinishReason{
	toolwirev1.FinishReason_FINISH_REASON_STOP:            FinishStop,
	toolwirev1.FinishReason_FINISH_REASON_LENGTH:          FinishLength,
	toolwirev1.FinishReason_FINISH_REASON_MAX_TOOL_ROUNDS: FinishMaxToolRounds,
	toolwirev1.FinishReason_FINISH_REASON_CONTENT_FILTER:  FinishContentFilter,
	toolwirev1.FinishReason_FINISH_REASON_OTHER:           FinishOther,
}

// Finish is the last event of a chat that completed: its summary.
type Finish struct {
	// Reason says why the chat ended.
	Reason FinishReason
	// Text is the final answer: the text of the last model call.
	Text string
	// ToolsCalled is the name of every tool call sent to the client, in order.
	ToolsCalled []string
	// ChunksReceived counts content chunks received from the model over all rounds.
	ChunksReceived int64
	// Rounds counts model calls: one tool round plus the answer is 2.
	Rounds int
	// InputTokens is the tokens read over all model calls; nil if any call did not report it.
	InputTokens *int64
	// OutputTokens is the tokens written over all model calls; nil if any call did not report it.
	OutputTokens *int64
	// Duration is the server's wall time from the start to this event.
	Duration time.Duration
	// Messages is every message the chat appended to the conversation; append them to the
	// history you sent to continue the conversation.
	Messages []Message
	// Model is the model that served the chat.
	Model string
}

func (*Started) isEvent()            {}
func (*TextDelta) isEvent()          {}
func (*ToolArgumentsDelta) isEvent() {}
func (*ToolRequest) isEvent()        {}
func (*ToolResultSent) isEvent()     {}
func (*ToolCallAbandoned) isEvent()  {}
func (*ToolCallRejected) isEvent()   {}
func (*UsageUpdate) isEvent()        {}
func (*Finish) isEvent()             {}

// eventFromProto converts one server event; nil (and no error) for an event kind this client
// does not know.
func eventFromProto(response *toolwirev1.ChatResponse) (Event, error) {
	switch kind := response.GetEvent().(type) {
	case *toolwirev1.ChatResponse_Started:
		return &Started{ChatID: kind.Started.GetChatId(), Model: kind.Started.GetModel()}, nil
	case *toolwirev1.ChatResponse_TextDelta:
		return &TextDelta{Text: kind.TextDelta.GetText(), Round: int(kind.TextDelta.GetRound())}, nil
	case *toolwirev1.ChatResponse_ToolRequest:
		return toolRequestFromProto(kind.ToolRequest)
	case *toolwirev1.ChatResponse_ToolArgumentsDelta:
		delta := kind.ToolArgumentsDelta
		return &ToolArgumentsDelta{ToolCallID: delta.GetToolCallId(), Name: delta.GetName(), ArgumentsDelta: delta.GetArgumentsDelta(), Round: int(delta.GetRound())}, nil
	case *toolwirev1.ChatResponse_ToolCallAbandoned:
		abandoned := kind.ToolCallAbandoned
		return &ToolCallAbandoned{ToolCallID: abandoned.GetToolCallId(), Reason: abandoned.GetReason(), Round: int(abandoned.GetRound())}, nil
	case *toolwirev1.ChatResponse_ToolCallRejected:
		rejected := kind.ToolCallRejected
		return &ToolCallRejected{ToolCallID: rejected.GetToolCallId(), Name: rejected.GetName(), ArgumentsJSON: rejected.GetArgumentsJson(), Reason: rejected.GetReason(), Round: int(rejected.GetRound())}, nil
	case *toolwirev1.ChatResponse_Usage:
		input, output := usageFromProto(kind.Usage.GetUsage())
		return &UsageUpdate{Round: int(kind.Usage.GetRound()), InputTokens: input, OutputTokens: output}, nil
	case *toolwirev1.ChatResponse_Finish:
		return finishFromProto(kind.Finish)
	default:
		return nil, nil
	}
}

// finishFromProto converts a ChatFinish; an unknown reason becomes FinishOther.
func finishFromProto(finish *toolwirev1.ChatFinish) (*Finish, error) {
	messages, err := messagesFromProto(finish.GetMessages())
	if err != nil {
		return nil, err
	}
	reason, known := finishReasons[finish.GetReason()]
	if !known {
		reason = FinishOther
	}
	input, output := usageFromProto(finish.GetUsage())
	return &Finish{
		Reason:         reason,
		Text:           finish.GetText(),
		ToolsCalled:    finish.GetToolsCalled(),
		ChunksReceived: finish.GetChunksReceived(),
		Rounds:         int(finish.GetRounds()),
		InputTokens:    input,
		OutputTokens:   output,
		Duration:       finish.GetDuration().AsDuration(),
		Messages:       messages,
		Model:          finish.GetModel(),
	}, nil
}

// usageFromProto returns the two counts, nil for a count the server left unset (not 0).
func usageFromProto(usage *toolwirev1.Usage) (input, output *int64) {
	if usage == nil {
		return nil, nil
	}
	if usage.InputTokens != nil {
		count := *usage.InputTokens
		input = &count
	}
	if usage.OutputTokens != nil {
		count := *usage.OutputTokens
		output = &count
	}
	return input, output
}

// toolRequestFromProto converts a ToolRequest; empty arguments become {}, and arguments that
// are not a JSON object are an error.
func toolRequestFromProto(request *toolwirev1.ToolRequest) (*ToolRequest, error) {
	arguments := bytes.TrimSpace([]byte(request.GetArgumentsJson()))
	if len(arguments) == 0 {
		arguments = []byte("{}")
	}
	if !json.Valid(arguments) || arguments[0] != '{' {
		return nil, fmt.Errorf("toolwire: the server sent tool call %q (%s) with arguments that are not a JSON object: %.200s",
			request.GetToolCallId(), request.GetName(), request.GetArgumentsJson())
	}
	return &ToolRequest{ToolCallID: request.GetToolCallId(), Name: request.GetName(), Arguments: arguments, Round: int(request.GetRound()), TraceContext: request.GetTraceContext()}, nil
}
