package toolwire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"sync"

	toolwirev1 "github.com/toolwire/toolwire/clients/go/toolwire/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// chatStream is the client side of one Chat stream.
type chatStream = grpc.BidiStreamingClient[toolwirev1.ChatRequest, toolwirev1.ChatResponse]

// Session is one chat, made by Client.Session. Range over Events once; while inside the loop,
// answer each ToolRequest for a tool without a Func with SendResult.
//
// The request side of the stream stays open until the Finish event arrives (the server fails
// a chat whose client half-closes while a tool may still be called); then the session
// half-closes and reads the stream to its status.
type Session struct {
	client        *Client
	ctx           context.Context
	request       ChatRequest
	options       []ChatOption
	onlyAutomatic bool

	mutex    sync.Mutex // guards the fields below and every write to stream
	opened   bool
	stream   chatStream
	finished bool
	awaiting map[string]bool // manual calls not answered yet
}

// received is one result of stream.Recv.
type received struct {
	response *toolwirev1.ChatResponse
	err      error
}

// toolOutcome is one automatic tool call's result, ready to send.
type toolOutcome struct {
	request *ToolRequest
	content string
	isError bool
}

// Events streams the chat's events, as Client.Chat describes. It can be ranged over once.
func (s *Session) Events() iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		s.mutex.Lock()
		alreadyOpened := s.opened
		s.opened = true
		s.mutex.Unlock()
		if alreadyOpened {
			yield(nil, errors.New("toolwire: a Session's events can be ranged over once; open a new Session"))
			return
		}
		ctx, cancel := context.WithCancel(s.ctx)
		toolContext, cancelTools := context.WithCancel(ctx)
		run := &chatRun{session: s, ctx: ctx, toolContext: toolContext, cancelTools: cancelTools, yield: yield}
		defer func() {
			cancel()
			run.workers.Wait()
		}()
		run.loop()
	}
}

// SendResult answers a ToolRequest for a tool without a Func. content is the result for the
// model (often JSON); isError says it describes a failure. Call it while ranging over Events;
// it fails for an unknown or already answered call and after the chat finished.
func (s *Session) SendResult(toolCallID, content string, isError bool) error {
	s.mutex.Lock()
	defer s.mutex.Unlock()
	if !s.awaiting[toolCallID] {
		return fmt.Errorf("toolwire: no unanswered ToolRequest with tool call id %q for a tool without a Func arrived on this chat", toolCallID)
	}
	if s.finished {
		return fmt.Errorf("toolwire: the chat already finished; the result for %q was not sent", toolCallID)
	}
	delete(s.awaiting, toolCallID)
	if err := s.sendLocked(toolCallID, content, isError); err != nil {
		return fmt.Errorf("toolwire: the chat ended before the result for %q was sent (the events loop reports how): %w", toolCallID, err)
	}
	return nil
}

// open builds the ChatStart, opens the stream and sends the start.
func (s *Session) open(ctx context.Context) (chatStream, error) {
	messages, err := messagesToProto(s.request.Messages)
	if err != nil {
		return nil, err
	}
	tools, err := toolsToProto(s.request.Tools)
	if err != nil {
		return nil, err
	}
	start := &toolwirev1.ChatStart{Model: s.request.Model, Messages: messages, Tools: tools}
	for _, option := range s.options {
		option(start)
	}
	stream, err := s.client.stub.Chat(ctx, s.client.callOptions...)
	if err != nil {
		return nil, errorFrom(s.ctx, err)
	}
	s.mutex.Lock()
	s.stream = stream
	s.mutex.Unlock()
	// An error of Send is io.EOF; Recv reports the status.
	_ = stream.Send(&toolwirev1.ChatRequest{Kind: &toolwirev1.ChatRequest_Start{Start: start}})
	return stream, nil
}

// sendLocked writes one tool result; the caller holds s.mutex.
func (s *Session) sendLocked(toolCallID, content string, isError bool) error {
	result := &toolwirev1.ToolResult{ToolCallId: toolCallID, Content: content, IsError: isError}
	return s.stream.Send(&toolwirev1.ChatRequest{Kind: &toolwirev1.ChatRequest_ToolResult{ToolResult: result}})
}

// sendAutomatic writes an automatic tool's result unless the chat has finished; it reports
// whether the result was sent.
func (s *Session) sendAutomatic(outcome toolOutcome) bool {
	s.mutex.Lock()
	defer s.mutex.Unlock()
	return !s.finished && s.sendLocked(outcome.request.ToolCallID, outcome.content, outcome.isError) == nil
}

// markFinished stops sending results and half-closes the stream.
func (s *Session) markFinished() {
	s.mutex.Lock()
	defer s.mutex.Unlock()
	s.finished = true
	_ = s.stream.CloseSend()
}

// awaitCaller records a manual call that SendResult may answer.
func (s *Session) awaitCaller(toolCallID string) {
	s.mutex.Lock()
	defer s.mutex.Unlock()
	if s.awaiting == nil {
		s.awaiting = make(map[string]bool)
	}
	s.awaiting[toolCallID] = true
}

// chatRun is the state of one ranging over Session.Events.
type chatRun struct {
	session     *Session
	ctx         context.Context // cancelled when the loop ends
	toolContext context.Context // also cancelled when Finish arrives
	cancelTools context.CancelFunc
	yield       func(Event, error) bool
	workers     sync.WaitGroup
	responses   chan received
	outcomes    chan toolOutcome
	finish      *Finish
}

// loop opens the chat and yields its events until the stream ends or the caller stops.
func (r *chatRun) loop() {
	stream, err := r.session.open(r.ctx)
	if err != nil {
		r.yield(nil, err)
		return
	}
	r.responses = make(chan received)
	r.outcomes = make(chan toolOutcome)
	r.workers.Go(func() { r.receive(stream) })
	for {
		var proceed bool
		select {
		case item := <-r.responses:
			proceed = r.handleResponse(item)
		case outcome := <-r.outcomes:
			proceed = r.handleOutcome(outcome)
		case <-r.ctx.Done(): // the caller's ctx ended; receive may not hand over Recv's error
			r.yield(nil, errorFrom(r.session.ctx, r.ctx.Err()))
			return
		}
		if !proceed {
			return
		}
	}
}

// receive reads the stream to its end, handing each result to the loop.
func (r *chatRun) receive(stream chatStream) {
	for {
		response, err := stream.Recv()
		select {
		case r.responses <- received{response, err}:
		case <-r.ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// handleResponse yields one server event (or the stream's end); false ends the loop.
func (r *chatRun) handleResponse(item received) bool {
	if errors.Is(item.err, io.EOF) {
		if r.finish == nil {
			r.yield(nil, &Error{Code: codes.Internal, Message: "the server ended the chat stream without a ChatFinish event"})
		} else {
			r.yield(r.finish, nil)
		}
		return false
	}
	if item.err != nil {
		r.yield(nil, errorFrom(r.session.ctx, item.err))
		return false
	}
	event, err := eventFromProto(item.response)
	if err != nil {
		r.yield(nil, err)
		return false
	}
	if event == nil || r.finish != nil { // an unknown kind, or an event after Finish: ignored
		return true
	}
	switch typed := event.(type) {
	case *ToolRequest:
		if err := r.dispatch(typed); err != nil {
			r.yield(nil, err)
			return false
		}
	case *Finish:
		r.finish = typed
		r.cancelTools()
		r.session.markFinished()
		return true // yielded once the stream ends with OK
	}
	return r.yield(event, nil)
}

// dispatch starts the tool's goroutine, or leaves the call to the caller.
func (r *chatRun) dispatch(request *ToolRequest) error {
	var function ToolFunc
	for _, tool := range r.session.request.Tools {
		if tool.Name == request.Name {
			function = tool.Func
		}
	}
	if function == nil && r.session.onlyAutomatic {
		return fmt.Errorf("toolwire: the model called tool %q, which has no Func: Chat and Run only run tools that have one; use Client.Session and Session.SendResult to answer it yourself", request.Name)
	}
	if function == nil {
		r.session.awaitCaller(request.ToolCallID)
		return nil
	}
	tracer := r.session.client.tracer()
	r.workers.Go(func() {
		content, isError := traceTool(r.toolContext, tracer, request, function)
		select {
		case r.outcomes <- toolOutcome{request: request, content: content, isError: isError}:
		case <-r.toolContext.Done():
		}
	})
	return nil
}

// handleOutcome sends a finished tool's result and yields ToolResultSent; false ends the loop.
func (r *chatRun) handleOutcome(outcome toolOutcome) bool {
	if !r.session.sendAutomatic(outcome) {
		return true // finished, or the stream broke and Recv reports how
	}
	return r.yield(&ToolResultSent{
		ToolCallID: outcome.request.ToolCallID,
		Name:       outcome.request.Name,
		Content:    outcome.content,
		IsError:    outcome.isError,
	}, nil)
}
