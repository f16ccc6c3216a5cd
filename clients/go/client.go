package toolwire

import (
	"context"
	"iter"

	toolwirev1 "github.com/toolwire/toolwire/clients/go/toolwire/v1"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/local"
)

// Client opens chats on a toolwire server and runs their tools in this process. It is safe
// for concurrent use; each chat has its own stream.
type Client struct {
	stub           toolwirev1.ChatServiceClient
	owned          *grpc.ClientConn
	tracerProvider trace.TracerProvider // nil: OpenTelemetry's global provider
	callOptions    []grpc.CallOption    // added to every call, e.g. by WithMaxReceiveMessageBytes
}

// DefaultMaxReceiveMessageBytes is the largest message a Client made by Dial accepts from the
// server: 64 MiB. A ChatFinish repeats every message the chat appended, tool results included,
// so it can be far larger than gRPC's default limit of 4 MiB.
const DefaultMaxReceiveMessageBytes = 64 << 20

// ChatRequest is what a chat starts from.
type ChatRequest struct {
	// Model is the model as provider/model-name, e.g. "scripted/weather".
	Model string
	// Messages is the conversation so far, oldest first; at least one message, e.g.
	// []Message{UserMessage("What is the weather in Paris?")}.
	Messages []Message
	// Tools are the tools the model may call; names are unique.
	Tools []Tool
}

// ModelInfo describes a model the server can serve.
type ModelInfo struct {
	// ID is the id to put in ChatRequest.Model, as provider/model-name.
	ID string
	// Provider is the provider part of the id.
	Provider string
	// Description is a short description for people.
	Description string
}

// Dial returns a Client for the server at target (host:port). Without options it connects in
// plaintext to loopback addresses only (local credentials); pass
// grpc.WithTransportCredentials(...) to use TLS or plaintext to another host. It accepts
// messages up to DefaultMaxReceiveMessageBytes (see WithMaxReceiveMessageBytes). Close the
// client when done. The options may include ClientOptions, such as WithTracerProvider.
func Dial(target string, options ...grpc.DialOption) (*Client, error) {
	withDefaults := append([]grpc.DialOption{
		grpc.WithTransportCredentials(local.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(DefaultMaxReceiveMessageBytes)),
	}, options...)
	conn, err := grpc.NewClient(target, withDefaults...)
	if err != nil {
		return nil, err
	}
	var clientOptions []ClientOption
	for _, option := range options {
		if clientOption, isClientOption := option.(ClientOption); isClientOption {
			clientOptions = append(clientOptions, clientOption)
		}
	}
	client := NewClient(conn, clientOptions...)
	client.owned = conn
	return client, nil
}

// NewClient returns a Client that uses conn, e.g. a *grpc.ClientConn shared with other
// services. Close does not close conn. Its calls keep conn's receive limit, 4 MiB unless conn
// was dialled with another, and a ChatFinish can be larger: dial conn with
// grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(toolwire.DefaultMaxReceiveMessageBytes)),
// or pass WithMaxReceiveMessageBytes here.
func NewClient(conn grpc.ClientConnInterface, options ...ClientOption) *Client {
	client := &Client{stub: toolwirev1.NewChatServiceClient(conn)}
	for _, option := range options {
		option.applyToClient(client)
	}
	return client
}

// maxReceiveOption is the ClientOption of WithMaxReceiveMessageBytes.
type maxReceiveOption struct {
	grpc.EmptyDialOption
	limit int
}

func (option maxReceiveOption) applyToClient(client *Client) {
	client.callOptions = append(client.callOptions, grpc.MaxCallRecvMsgSize(option.limit))
}

// WithMaxReceiveMessageBytes sets the largest message the client's calls accept from the
// server, instead of DefaultMaxReceiveMessageBytes (Dial) or the connection's own limit
// (NewClient). A ChatFinish repeats the chat's tool results and answer; one over the limit
// ends the chat with a ResourceExhausted *Error.
func WithMaxReceiveMessageBytes(limit int) ClientOption {
	return maxReceiveOption{limit: limit}
}

// Close closes the connection Dial opened; it does nothing for a client made by NewClient.
func (c *Client) Close() error {
	if c.owned == nil {
		return nil
	}
	return c.owned.Close()
}

// ListModels returns the models the server can serve, sorted by id.
func (c *Client) ListModels(ctx context.Context) ([]ModelInfo, error) {
	response, err := c.stub.ListModels(ctx, &toolwirev1.ListModelsRequest{}, c.callOptions...)
	if err != nil {
		return nil, errorFrom(ctx, err)
	}
	models := make([]ModelInfo, 0, len(response.GetModels()))
	for _, model := range response.GetModels() {
		models = append(models, ModelInfo{ID: model.GetId(), Provider: model.GetProvider(), Description: model.GetDescription()})
	}
	return models, nil
}

// Chat streams one chat's events, running every tool call with the tool's Func.
//
// The events come in server order: Started first, Finish last. Each tool call is yielded as a
// ToolRequest, then its Func runs in its own goroutine and a ToolResultSent follows once its
// result is sent. Every failure is yielded once as the last pair, with a nil event: an *Error
// for a non-OK status (see Error for a cancelled ctx), or a plain error for an invalid request
// or a call of a tool without a Func (use Client.Session for those). Stopping the loop early
// cancels the chat and waits for its running tools.
func (c *Client) Chat(ctx context.Context, request ChatRequest, options ...ChatOption) iter.Seq2[Event, error] {
	session := c.Session(ctx, request, options...)
	session.onlyAutomatic = true
	return session.Events()
}

// Run runs a whole chat like Chat and returns its summary, the Finish event.
func (c *Client) Run(ctx context.Context, request ChatRequest, options ...ChatOption) (*Finish, error) {
	for event, err := range c.Chat(ctx, request, options...) {
		if err != nil {
			return nil, err
		}
		if finish, isFinish := event.(*Finish); isFinish {
			return finish, nil
		}
	}
	return nil, &Error{Code: codes.Internal, Message: "the chat ended without a Finish event"}
}

// Session returns a chat whose tool calls the caller may answer. Nothing is sent until its
// Events are ranged over. Tools with a Func still run automatically; a ToolRequest for a tool
// without one waits for Session.SendResult.
func (c *Client) Session(ctx context.Context, request ChatRequest, options ...ChatOption) *Session {
	return &Session{client: c, ctx: ctx, request: request, options: options}
}
