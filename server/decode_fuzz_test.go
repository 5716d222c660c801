package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
)

// exactPurchase decodes body the way the API documents it, independently of
// parsePurchase: one JSON object with exactly the members item_id (string),
// quantity (integer) and price (an object with exactly currency and amount),
// each present once, names matched exactly. It returns an error for
// anything else.
func exactPurchase(body []byte) (purchaseInput, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	top, err := exactObject(dec, "item_id", "quantity", "price")
	if err != nil {
		return purchaseInput{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return purchaseInput{}, errors.New("data after the object")
	}
	var in purchaseInput
	if err := json.Unmarshal(top["item_id"], &in.ItemID); err != nil || top["item_id"][0] != '"' {
		return in, fmt.Errorf("item_id: %s", top["item_id"])
	}
	if in.Quantity, err = strictInt(top["quantity"]); err != nil {
		return in, err
	}
	pdec := json.NewDecoder(bytes.NewReader(top["price"]))
	pdec.UseNumber()
	price, err := exactObject(pdec, "currency", "amount")
	if err != nil {
		return in, fmt.Errorf("price: %w", err)
	}
	if err := json.Unmarshal(price["currency"], &in.Price.Currency); err != nil || price["currency"][0] != '"' {
		return in, fmt.Errorf("price.currency: %s", price["currency"])
	}
	if in.Price.Amount, err = strictInt(price["amount"]); err != nil {
		return in, err
	}
	return in, nil
}

// exactObject reads one object whose member names are exactly names, each
// once, none null, and returns the raw values.
func exactObject(dec *json.Decoder, names ...string) (map[string]json.RawMessage, error) {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not an object: %v %v", tok, err)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, _ := tok.(string)
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("duplicate member %q", name)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if string(v) == "null" {
			return nil, fmt.Errorf("%s is null", name)
		}
		out[name] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if len(out) != len(names) {
		return nil, fmt.Errorf("members %v, want exactly %v", out, names)
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("no member %q", n)
		}
	}
	return out, nil
}

func strictInt(raw json.RawMessage) (int64, error) {
	return strconv.ParseInt(string(raw), 10, 64)
}

// FuzzParsePurchase: parsePurchase never panics; what it accepts is a
// complete purchase, exactly as the API documents it, decoded to the same
// values; what it refuses is a 400 invalid_request problem.
func FuzzParsePurchase(f *testing.F) {
	for _, seed := range []string{
		`{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100}}`,
		` {"price":{"amount":5,"currency":"gems"},"quantity":1000,"item_id":"sword"} ` + "\n",
		`{"item_id":"\u00e9p\u00e9e \ud83d\udde1","quantity":-9223372036854775808,"price":{"currency":"","amount":0}}`,
		`{"item_id":"potion","quantity":1,"price":{"currency":"gold"}}`,
		`{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100,"x":1}}`,
		`{"item_id":"potion","quantity":1.0,"price":{"currency":"gold","amount":100}}`,
		`{"item_id":"potion","quantity":9223372036854775808,"price":{"currency":"gold","amount":100}}`,
		`{"item_id":null,"quantity":1,"price":null}`,
		`{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100}}{}`,
		`{"item_id":"potion","quantity":1,"price":[]}`,
		`[{"item_id":"potion"}]`,
		`"potion"`, `null`, `true`, `0`, ``, ` `, `{`, `}`, `{}`, `{"":1}`,
		"{\"item_id\":\"\xff\xfe\",\"quantity\":1,\"price\":{\"currency\":\"gold\",\"amount\":100}}",
		`{"item_id":"a\u0000b","quantity":1,"price":{"currency":"gold","amount":1}}`,
		`{"price":{"currency":"gold","amount":100},"price":{"currency":"gold","amount":100}}`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := parsePurchase(body)
		if err != nil {
			var p problem
			if !errors.As(err, &p) || p.Status != 400 || p.Code != codeInvalidRequest || p.Detail == "" {
				t.Fatalf("parsePurchase(%q) error %v, want a 400 invalid_request problem with a detail", body, err)
			}
			return
		}
		want, err := exactPurchase(body)
		if err != nil {
			t.Fatalf("parsePurchase accepted %q, which is not a complete purchase body: %v", body, err)
		}
		if in != want {
			t.Fatalf("parsePurchase(%q) = %+v, want %+v", body, in, want)
		}
	})
}

// TestParsePurchaseFieldNamesAreExact: the body's member names are the
// documented ones exactly, each once. encoding/json on its own matches names
// case-insensitively and keeps the last of duplicates, which lets a body mean
// something other than what a proxy, a log reader or the client's own
// validation saw ({"quantity":1,"quantity":1000}).
func TestParsePurchaseFieldNamesAreExact(t *testing.T) {
	for _, body := range []string{
		`{"Item_ID":"potion","quantity":1,"price":{"currency":"gold","amount":100}}`,
		`{"item_id":"potion","QUANTITY":1,"price":{"currency":"gold","amount":100}}`,
		`{"item_id":"potion","quantity":1,"Price":{"Currency":"gold","Amount":100}}`,
		`{"item_id":"potion","quantity":1,"quantity":1000,"price":{"currency":"gold","amount":100}}`,
		`{"item_id":"potion","item_id":"sword","quantity":1,"price":{"currency":"gold","amount":100}}`,
		`{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":1,"amount":100}}`,
	} {
		if in, err := parsePurchase([]byte(body)); err == nil {
			t.Errorf("parsePurchase(%s) = %+v, want 400 invalid_request", body, in)
		}
	}
}
