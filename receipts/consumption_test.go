package receipts

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coinop/coinop/receipts/fakestore"
)

func TestSendConsumptionPutsTheBodyAndClassifiesAnswers(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	for _, tt := range []struct {
		status int
		body   string
		check  func(error) bool
	}{
		{http.StatusAccepted, "", func(err error) bool { return err == nil }},
		{http.StatusBadRequest, `{"errorCode":4000035,"errorMessage":"Invalid customer consented"}`, func(err error) bool { return ReasonOf(err) == ReasonFormat }},
		{http.StatusNotFound, `{"errorCode":4040010,"errorMessage":"Transaction id not found."}`, func(err error) bool { return ReasonOf(err) == ReasonState }},
		{http.StatusUnauthorized, "", func(err error) bool { return errors.Is(err, ErrMisconfigured) }},
		{http.StatusTooManyRequests, `{"errorCode":4290000,"errorMessage":"Rate limit exceeded."}`, func(err error) bool { return errors.Is(err, ErrStoreUnavailable) }},
		{http.StatusInternalServerError, `{"errorCode":5000001,"errorMessage":"An unknown retryable error occurred."}`, func(err error) bool { return errors.Is(err, ErrStoreUnavailable) }},
	} {
		var got map[string]any
		var path, method string
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			method, path = r.Method, r.URL.Path
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				t.Errorf("no bearer token")
			}
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &got); err != nil {
				t.Errorf("body %s: %v", b, err)
			}
			if tt.body != "" {
				w.Header().Set("Content-Type", "application/json")
			}
			w.WriteHeader(tt.status)
			_, _ = io.WriteString(w, tt.body)
		}))
		a := newTestServerAPI(t, ca, srv.URL, nil)
		err := a.SendConsumption(context.Background(), "2000000000000001", AppleConsumption{
			CustomerConsented: true, ConsumptionStatus: 2, DeliveryStatus: 0, AccountTenure: 3, Platform: 1,
		})
		srv.Close()
		if !tt.check(err) {
			t.Errorf("HTTP %d: %v", tt.status, err)
		}
		if method != http.MethodPut || path != "/inApps/v1/transactions/consumption/2000000000000001" {
			t.Errorf("%s %s", method, path)
		}
		if got["customerConsented"] != true || got["consumptionStatus"] != float64(2) || got["accountTenure"] != float64(3) {
			t.Errorf("body = %v", got)
		}
	}
	a := newTestServerAPI(t, ca, "http://127.0.0.1:1", nil)
	if err := a.SendConsumption(context.Background(), "../x", AppleConsumption{}); ReasonOf(err) != ReasonFormat {
		t.Errorf("bad id: %v", err)
	}
}
