package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDriveSendsTheScheduleAndChecksEveryAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Write([]byte(`{"version":1}`))
	}))
	defer srv.Close()
	run := func(args ...string) Measurement {
		t.Helper()
		var out bytes.Buffer
		if err := drive(context.Background(), append([]string{"-url", srv.URL, "-rate", "200", "-duration", "500ms"}, args...), &out); err != nil {
			t.Fatal(err)
		}
		var m Measurement
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := run(); m.Requests != 100 || m.Errors != 0 || m.Dropped != 0 || m.P99 <= 0 {
		t.Errorf("200s: %+v, want 100 requests without errors", m)
	}
	if m := run("-if-none-match", `"v1"`, "-expect", "304"); m.Requests != 100 || m.Errors != 0 {
		t.Errorf("304s: %+v, want 100 requests without errors", m)
	}
	if m := run("-expect", "304"); m.Errors != 100 {
		t.Errorf("200s when 304s are expected: %+v, want every request an error", m)
	}
}

func TestDriveRefusesToLeaveLoopback(t *testing.T) {
	err := drive(context.Background(), []string{"-url", "http://example.com"}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err = %v, want a refusal", err)
	}
}
