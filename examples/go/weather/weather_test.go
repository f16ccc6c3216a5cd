package main

import (
	"context"
	"strings"
	"testing"
	"time"

	toolwire "github.com/toolwire/toolwire/clients/go"
	"github.com/toolwire/toolwire/clients/go/toolwiretest"
)

func TestTheWeatherExampleRuns(t *testing.T) {
	server := toolwiretest.Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // only bounds a broken run
	defer cancel()
	var out strings.Builder
	finish, err := run(ctx, server.Target, "scripted/weather", &out)
	if err != nil {
		t.Fatal(err)
	}
	if finish.Reason != toolwire.FinishStop {
		t.Errorf("reason = %s, want stop", finish.Reason)
	}
	printed := out.String()
	for _, want := range []string{
		"It is sunny in Paris.",
		`[tool] get_weather({"location": "Paris"})`,
		`[tool] -> {"location":"Paris","sky":"sunny","celsius":21}`,
		"[done] stop: 2 model calls, tools [get_weather], ",
	} {
		if !strings.Contains(printed, want) {
			t.Errorf("the output lacks %q:\n%s", want, printed)
		}
	}
}
