package toolwire

import (
	"encoding/json"
	"fmt"

	toolwirev1 "github.com/toolwire/toolwire/clients/go/toolwire/v1"
)

// Role says who wrote a message.
type Role string

// The roles a message can have.
const (
	// RoleSystem is instructions for the model.
	RoleSystem Role = "system"
	// RoleUser is the application's user.
	RoleUser Role = "user"
	// RoleAssistant is the model.
	RoleAssistant Role = "assistant"
	// RoleTool is the result of a tool call, answering the assistant message that made it.
	RoleTool Role = "tool"
)

var rolesToProto = map[Role]toolwirev1.Role{
	RoleSystem:    toolwirev1.Role_ROLE_SYSTEM,
	RoleUser:      toolwirev1.Role_ROLE_USER,
	RoleAssistant: toolwirev1.Role_ROLE_ASSISTANT,
	RoleTool:      toolwirev1.Role_ROLE_TOOL,
}

var rolesFromProto = map[toolwirev1.Role]Role{
	toolwirev1.Role_ROLE_SYSTEM:    RoleSystem,
	toolwirev1.Role_ROLE_USER:      RoleUser,
	toolwirev1.Role_ROLE_ASSISTANT: RoleAssistant,
	toolwirev1.Role_ROLE_TOOL:      RoleTool,
}

// Message is one turn of the conversation.
type Message struct {
	// Role says who wrote it.
	Role Role
	// Content is the text; it may be empty for an assistant message that only calls tools.
	Content string
	// ToolCalls are the tool calls an assistant message made, in order.
	ToolCalls []ToolCall
	// ToolCallID is, for a tool message, the id of the call it answers.
	ToolCallID string
	// IsError is, for a tool message, true when Content describes a failure.
	IsError bool
}

// ToolCall is one tool call an assistant message made.
type ToolCall struct {
	// ID is the call's id, unique within the chat.
	ID string
	// Name is the tool's name.
	Name string
	// Arguments is the JSON object the tool was called with.
	Arguments json.RawMessage
}

// SystemMessage returns a system message: instructions for the model.
func SystemMessage(text string) Message {
	return Message{Role: RoleSystem, Content: text}
}

// UserMessage returns a user message.
func UserMessage(text string) Message {
	return Message{Role: RoleUser, Content: text}
}

// AssistantMessage returns an assistant message, with the tool calls it made if any.
func AssistantMessage(text string, toolCalls ...ToolCall) Message {
	return Message{Role: RoleAssistant, Content: text, ToolCalls: toolCalls}
}

// ToolMessage returns a tool message answering the call toolCallID.
func ToolMessage(toolCallID, content string, isError bool) Message {
	return Message{Role: RoleTool, Content: content, ToolCallID: toolCallID, IsError: isError}
}

// messagesToProto converts the conversation; an unknown role is an error.
func messagesToProto(messages []Message) ([]*toolwirev1.Message, error) {
	converted := make([]*toolwirev1.Message, 0, len(messages))
	for index, message := range messages {
		role, known := rolesToProto[message.Role]
		if !known {
			return nil, fmt.Errorf("toolwire: message %d has role %q, want system, user, assistant or tool", index, message.Role)
		}
		calls := make([]*toolwirev1.ToolCall, 0, len(message.ToolCalls))
		for _, call := range message.ToolCalls {
			calls = append(calls, &toolwirev1.ToolCall{Id: call.ID, Name: call.Name, ArgumentsJson: string(call.Arguments)})
		}
		converted = append(converted, &toolwirev1.Message{
			Role:       role,
			Content:    message.Content,
			ToolCalls:  calls,
			ToolCallId: message.ToolCallID,
			IsError:    message.IsError,
		})
	}
	return converted, nil
}

// messagesFromProto converts messages the server sent; an unset or unknown role is an error.
func messagesFromProto(messages []*toolwirev1.Message) ([]Message, error) {
	converted := make([]Message, 0, len(messages))
	for _, message := range messages {
		role, known := rolesFromProto[message.GetRole()]
		if !known {
			return nil, fmt.Errorf("toolwire: the server sent a message with role %v, which this client does not know", message.GetRole())
		}
		var calls []ToolCall
		for _, call := range message.GetToolCalls() {
			calls = append(calls, ToolCall{ID: call.GetId(), Name: call.GetName(), Arguments: json.RawMessage(call.GetArgumentsJson())})
		}
		converted = append(converted, Message{
			Role:       role,
			Content:    message.GetContent(),
			ToolCalls:  calls,
			ToolCallID: message.GetToolCallId(),
			IsError:    message.GetIsError(),
		})
	}
	return converted, nil
}
