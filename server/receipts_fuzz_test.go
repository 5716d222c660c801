package server

import (
	"encoding/json"
	"testing"
)

// FuzzParseReceipt feeds arbitrary bodies to the /v1/receipts decoder.
// Whatever arrives, it answers either a 400 invalid_request or exactly one
// complete form with non-empty fields, and an accepted body decodes to the
// same input when encoded again.
func FuzzParseReceipt(f *testing.F) {
	for _, seed := range []string{
		`{"store":"apple","signed_transaction":"a.b.c"}`,
		`{"store":"apple","receipt":"TUlJ"}`,
		`{"store":"google","product_id":"com.example.gems100","purchase_token":"tok"}`,
		`{"store":"apple","signed_transaction":"a","receipt":"b"}`,
		`{"store":"google","product_id":"p"}`,
		`{"store":"amazon","receipt":"x"}`,
		`{"store":"apple","signed_transaction":""}`,
		`{"store":"apple","signed_transaction":"x"}junk`,
		`{"store":"apple","STORE":"google","signed_transaction":"x"}`,
		`{"store":null,"receipt":"x"}`,
		`[]`, `null`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := parseReceipt(body)
		if err != nil {
			p, ok := err.(problem)
			if !ok || p.Status != 400 || p.Code != codeInvalidRequest {
				t.Fatalf("error %#v is not a 400 invalid_request", err)
			}
			return
		}
		forms := 0
		switch in.Store {
		case "apple":
			if in.SignedTransaction != "" {
				forms++
			}
			if in.Receipt != "" {
				forms++
			}
			if in.ProductID != "" || in.PurchaseToken != "" {
				t.Fatalf("apple input with Google fields: %+v", in)
			}
		case "google":
			if in.ProductID == "" || in.PurchaseToken == "" || in.SignedTransaction != "" || in.Receipt != "" {
				t.Fatalf("incomplete google input: %+v", in)
			}
			forms++
		default:
			t.Fatalf("store %q accepted", in.Store)
		}
		if forms != 1 {
			t.Fatalf("%d forms in %+v", forms, in)
		}
		m := map[string]string{"store": in.Store}
		for k, v := range map[string]string{"signed_transaction": in.SignedTransaction, "receipt": in.Receipt,
			"product_id": in.ProductID, "purchase_token": in.PurchaseToken} {
			if v != "" {
				m[k] = v
			}
		}
		again, _ := json.Marshal(m)
		in2, err := parseReceipt(again)
		if err != nil || in2 != in {
			t.Fatalf("re-encoded %s parses to %+v, %v; want %+v", again, in2, err, in)
		}
	})
}
