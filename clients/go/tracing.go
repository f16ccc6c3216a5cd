package toolwire

import (
	"context"
	"unicode/utf8"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// instrumentationName names the tracer of the tool spans (the OpenTelemetry instrumentation
// scope): this package's import path.
const instrumentationName = "github.com/toolwire/toolwire/clients/go"

// errorDescriptionLimit bounds the error result kept as a failed tool span's status description.
const errorDescriptionLimit = 200

// serverPropagator reads ToolRequest.TraceContext. The server always writes W3C trace context
// there, so it is read with the W3C propagator itself, whatever propagator the application
// set globally (the global one is a no-op until the application sets one).
var serverPropagator propagation.TextMapPropagator = propagation.TraceContext{}

// ClientOption configures a Client. Pass it to NewClient, or to Dial among the gRPC dial
// options: a ClientOption is also a grpc.DialOption, one that leaves the connection as it is.
type ClientOption interface {
	grpc.DialOption
	applyToClient(client *Client)
}

// tracerProviderOption is the ClientOption of WithTracerProvider.
type tracerProviderOption struct {
	grpc.EmptyDialOption
	provider trace.TracerProvider
}

func (option tracerProviderOption) applyToClient(client *Client) {
	client.tracerProvider = option.provider
}

// WithTracerProvider makes the client's tool spans with provider instead of OpenTelemetry's
// global tracer provider (otel.GetTracerProvider, looked up at each tool run).
func WithTracerProvider(provider trace.TracerProvider) ClientOption {
	return tracerProviderOption{provider: provider}
}

// tracer returns the tracer of the tool spans.
func (c *Client) tracer() trace.Tracer {
	provider := c.tracerProvider
	if provider == nil {
		provider = otel.GetTracerProvider()
	}
	return provider.Tracer(instrumentationName)
}

// traceTool runs function inside a span "execute_tool {name}", a child of the server's span
// for the call when request carries its trace context, else of the span in ctx (if any). The
// tool's ctx carries the span. An error result marks the span as failed.
func traceTool(ctx context.Context, tracer trace.Tracer, request *ToolRequest, function ToolFunc) (content string, isError bool) {
	ctx, span := tracer.Start(ContextWithToolTrace(ctx, request), "execute_tool "+request.Name,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(
			attribute.String("gen_ai.operation.name", "execute_tool"),
			attribute.String("gen_ai.tool.name", request.Name),
			attribute.String("gen_ai.tool.call.id", request.ToolCallID),
			attribute.String("gen_ai.tool.type", "function"),
		))
	defer span.End()
	content, isError = runTool(ctx, function, request.Arguments)
	if isError {
		span.SetAttributes(attribute.String("error.type", "tool_error"))
		span.SetStatus(codes.Error, truncate(content, errorDescriptionLimit))
	}
	return content, isError
}

// truncate keeps at most limit bytes of text, without splitting a UTF-8 sequence.
func truncate(text string, limit int) string {
	if len(text) <= limit {
		return text
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut]
}

// ContextWithToolTrace returns ctx carrying the server's span for request as its remote parent
// span context, for a caller that runs a tool without a Func itself (Client.Session) and opens
// its own span; ctx unchanged when the server sent no trace context.
func ContextWithToolTrace(ctx context.Context, request *ToolRequest) context.Context {
	return serverPropagator.Extract(ctx, propagation.MapCarrier(request.TraceContext))
}
