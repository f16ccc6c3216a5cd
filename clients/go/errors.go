package toolwire

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a toolwire call that ended with a non-OK gRPC status.
//
// It implements GRPCStatus, so status.Code(err) and status.Convert(err) work on it. When the
// caller's context ends, the error has Code codes.Canceled (codes.DeadlineExceeded for a passed
// deadline) and wraps the context's error, so errors.Is(err, context.Canceled) holds too.
type Error struct {
	// Code is the gRPC status code, e.g. codes.NotFound for an unknown model.
	Code codes.Code
	// Message is the server's message: what went wrong and usually how to fix it.
	Message string
	cause   error
}

// Error returns the code and the message, e.g. "NotFound: unknown model ...".
func (e *Error) Error() string {
	return e.Code.String() + ": " + e.Message
}

// GRPCStatus returns the error as a gRPC status.
func (e *Error) GRPCStatus() *status.Status {
	return status.New(e.Code, e.Message)
}

// Unwrap returns the context's error for a cancelled call, else nil.
func (e *Error) Unwrap() error {
	return e.cause
}

// errorFrom converts an error from a gRPC call made with ctx: the context's own error when
// ctx has ended, else the call's status.
func errorFrom(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var converted *Error
	if errors.As(err, &converted) {
		return converted
	}
	if contextError := ctx.Err(); contextError != nil {
		return &Error{Code: status.FromContextError(contextError).Code(), Message: contextError.Error(), cause: contextError}
	}
	grpcStatus := status.Convert(err)
	return &Error{Code: grpcStatus.Code(), Message: grpcStatus.Message()}
}
