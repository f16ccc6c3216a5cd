package toolwire

import (
	"time"

	toolwirev1 "github.com/toolwire/toolwire/clients/go/toolwire/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// ChatOption sets one option of a chat. It edits the ChatStart message sent to open the chat,
// so any field of the wire contract can be set with a ChatOption of your own.
type ChatOption func(start *toolwirev1.ChatStart)

// WithMaxToolRounds sets the most model turns that may end in tool calls; 0 is the server's
// default (10).
func WithMaxToolRounds(rounds int) ChatOption {
	return func(start *toolwirev1.ChatStart) { start.MaxToolRounds = int32(rounds) }
}

// WithToolTimeout sets how long the server waits for each tool result before it abandons the
// call (a ToolCallAbandoned event).
func WithToolTimeout(timeout time.Duration) ChatOption {
	return func(start *toolwirev1.ChatStart) { start.ToolTimeout = durationpb.New(timeout) }
}

// WithTemperature sets the sampling temperature; without it the provider's default applies.
func WithTemperature(temperature float64) ChatOption {
	return func(start *toolwirev1.ChatStart) { start.Temperature = &temperature }
}

// WithTopP sets the nucleus sampling probability mass; without it the provider's default applies.
func WithTopP(topP float64) ChatOption {
	return func(start *toolwirev1.ChatStart) { start.TopP = &topP }
}

// WithMaxOutputTokens sets the most tokens the model may generate in one model call.
func WithMaxOutputTokens(tokens int) ChatOption {
	return func(start *toolwirev1.ChatStart) { start.MaxOutputTokens = int32(tokens) }
}

// WithStop sets sequences that end generation when the model produces them.
func WithStop(sequences ...string) ChatOption {
	return func(start *toolwirev1.ChatStart) { start.Stop = sequences }
}

// ToolChoice says whether and which tool the model must call: ToolChoiceAuto,
// ToolChoiceNone, ToolChoiceRequired or ToolChoiceNamed(name).
type ToolChoice struct {
	mode     toolwirev1.ToolChoiceMode
	toolName string
}

var (
	// ToolChoiceAuto lets the model decide whether to call tools.
	ToolChoiceAuto = ToolChoice{mode: toolwirev1.ToolChoiceMode_TOOL_CHOICE_MODE_AUTO}
	// ToolChoiceNone forbids tool calls.
	ToolChoiceNone = ToolChoice{mode: toolwirev1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE}
	// ToolChoiceRequired makes the model call at least one tool.
	ToolChoiceRequired = ToolChoice{mode: toolwirev1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED}
)

// ToolChoiceNamed makes the model call the named tool.
func ToolChoiceNamed(toolName string) ToolChoice {
	return ToolChoice{mode: toolwirev1.ToolChoiceMode_TOOL_CHOICE_MODE_TOOL, toolName: toolName}
}

// WithToolChoice sets whether and which tool the model must call.
func WithToolChoice(choice ToolChoice) ChatOption {
	return func(start *toolwirev1.ChatStart) {
		start.ToolChoice = &toolwirev1.ToolChoice{Mode: choice.mode, ToolName: choice.toolName}
	}
}

// WithParallelToolCalls sets whether the model may call several tools in one turn; without it
// the provider's default applies.
func WithParallelToolCalls(allowed bool) ChatOption {
	return func(start *toolwirev1.ChatStart) { start.ParallelToolCalls = &allowed }
}

// WithStreamToolArguments makes the chat also yield ToolArgumentsDelta events.
func WithStreamToolArguments() ChatOption {
	return func(start *toolwirev1.ChatStart) { start.StreamToolArguments = true }
}

// WithTextCoalesceWindow lets the server hold the model's text for up to window after each
// TextDelta it sends, so fast text arrives as fewer, larger TextDelta events. The first text of
// each model round is never held, any other event first sends what is held, and the joined text
// is the same. Zero (the default) means no window; at most the server's limit (1s by default).
func WithTextCoalesceWindow(window time.Duration) ChatOption {
	return func(start *toolwirev1.ChatStart) { start.TextCoalesceWindow = durationpb.New(window) }
}
