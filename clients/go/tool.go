package toolwire

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	toolwirev1 "github.com/toolwire/toolwire/clients/go/toolwire/v1"
)

// ToolFunc runs one tool call. args is the JSON object the model called the tool with (already
// validated by the server against the tool's schema). The returned text (often JSON) goes back
// to the model; a returned error becomes an error result whose content is err.Error().
//
// ctx is cancelled when the chat ends or the caller stops iterating; a ToolFunc must return
// soon after, because the chat waits for its tools before it returns.
// ctx also carries the tool's OpenTelemetry span (see the package doc), the parent of spans the
// tool starts from it.
type ToolFunc func(ctx context.Context, args json.RawMessage) (string, error)

// Tool is a tool the model may call.
type Tool struct {
	// Name is the tool's name: letters, digits, '_' and '-', at most 64 characters; unique
	// within a chat.
	Name string
	// Description says what the tool does, for the model.
	Description string
	// Schema is a JSON Schema object describing the arguments; empty means no arguments.
	Schema json.RawMessage
	// Func runs the tool. A tool with a nil Func is manual: its ToolRequest is left to the
	// caller, who answers with Session.SendResult.
	Func ToolFunc
}

var toolNamePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// NewTool returns a Tool after checking its name and that schema is a JSON object (or empty).
func NewTool(name, description, schema string, function ToolFunc) (Tool, error) {
	tool := Tool{Name: name, Description: description, Schema: json.RawMessage(schema), Func: function}
	return tool, tool.validate()
}

// MustTool is NewTool for tools defined at package level: it panics on an invalid tool.
func MustTool(name, description, schema string, function ToolFunc) Tool {
	tool, err := NewTool(name, description, schema, function)
	if err != nil {
		panic(err)
	}
	return tool
}

// validate checks the name and the schema.
func (tool Tool) validate() error {
	if !toolNamePattern.MatchString(tool.Name) {
		return fmt.Errorf("toolwire: tool name %q must be 1 to 64 letters, digits, '_' or '-'", tool.Name)
	}
	schema := bytes.TrimSpace(tool.Schema)
	if len(schema) == 0 {
		return nil
	}
	var object map[string]json.RawMessage
	if err := json.Unmarshal(schema, &object); err != nil || object == nil {
		return fmt.Errorf("toolwire: the schema of tool %q is not a JSON object: %.200s", tool.Name, tool.Schema)
	}
	return nil
}

// toolsToProto validates the tools and converts them; names must be unique.
func toolsToProto(tools []Tool) ([]*toolwirev1.ToolDefinition, error) {
	seen := make(map[string]bool, len(tools))
	definitions := make([]*toolwirev1.ToolDefinition, 0, len(tools))
	for _, tool := range tools {
		if err := tool.validate(); err != nil {
			return nil, err
		}
		if seen[tool.Name] {
			return nil, fmt.Errorf("toolwire: two tools are named %q; tool names must be unique", tool.Name)
		}
		seen[tool.Name] = true
		definitions = append(definitions, &toolwirev1.ToolDefinition{
			Name:                 tool.Name,
			Description:          tool.Description,
			ParametersJsonSchema: string(bytes.TrimSpace(tool.Schema)),
		})
	}
	return definitions, nil
}

// runTool runs a tool function; a returned error or a panic becomes an error result.
func runTool(ctx context.Context, function ToolFunc, args json.RawMessage) (content string, isError bool) {
	defer func() {
		if recovered := recover(); recovered != nil {
			content, isError = fmt.Sprintf("panic: %v", recovered), true
		}
	}()
	content, err := function(ctx, args)
	if err != nil {
		return err.Error(), true
	}
	return content, false
}
