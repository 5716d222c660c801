package receipts

import (
	"encoding/base64"
	"errors"
	"math/big"
	"regexp"
	"unicode/utf8"
)

// These helpers read a transaction id out of old-style receipts WITHOUT
// verifying anything: use the id only to look the transaction up with the
// App Store Server API (whose answer is signed data for AppleVerifier),
// never to grant.

var (
	rePurchaseInfo  = regexp.MustCompile(`"purchase-info"\s*=\s*"([A-Za-z0-9+/=]+)";`)
	reTransactionID = regexp.MustCompile(`"transaction-id"\s*=\s*"([0-9]{1,32})";`)
)

// TransactionIDFromLegacyTransactionReceipt returns the transaction id in an
// original-StoreKit transaction receipt (SKPaymentTransaction's
// transactionReceipt, base64). Unverified. Errors: *InvalidError ReasonFormat.
func TransactionIDFromLegacyTransactionReceipt(b64 string) (string, error) {
	if len(b64) > maxLegacyReceipt {
		return "", invalid(ReasonFormat, "receipt too long")
	}
	outer, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", invalid(ReasonFormat, "receipt is not base64")
	}
	m := rePurchaseInfo.FindSubmatch(outer)
	if m == nil {
		return "", invalid(ReasonFormat, "receipt has no purchase-info")
	}
	inner, err := base64.StdEncoding.DecodeString(string(m[1]))
	if err != nil {
		return "", invalid(ReasonFormat, "purchase-info is not base64")
	}
	if m = reTransactionID.FindSubmatch(inner); m == nil {
		return "", invalid(ReasonFormat, "purchase-info has no transaction-id")
	}
	return string(m[1]), nil
}

// App receipt attribute types.
const (
	receiptInAppType        = 17
	receiptTransactionIDTyp = 1703
)

// TransactionIDFromAppReceipt returns the transaction id of the first in-app
// purchase in an app receipt (PKCS#7, base64), or "" when it holds none.
// Unverified: the PKCS#7 signature is not checked. Errors: *InvalidError
// ReasonFormat.
func TransactionIDFromAppReceipt(b64 string) (string, error) {
	if len(b64) > maxLegacyReceipt {
		return "", invalid(ReasonFormat, "receipt too long")
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", invalid(ReasonFormat, "receipt is not base64")
	}
	payload, err := pkcs7Content(der)
	if err != nil {
		return "", invalid(ReasonFormat, "app receipt: %v", err)
	}
	attrs, err := receiptAttributes(payload)
	if err != nil {
		return "", invalid(ReasonFormat, "app receipt payload: %v", err)
	}
	for _, a := range attrs {
		if a.typ != receiptInAppType {
			continue
		}
		inApp, err := receiptAttributes(a.value)
		if err != nil {
			return "", invalid(ReasonFormat, "in-app receipt: %v", err)
		}
		for _, x := range inApp {
			if x.typ != receiptTransactionIDTyp {
				continue
			}
			s, _, err := readBER(x.value, 0)
			if err != nil || (s.tag != 0x0c && s.tag != 0x16) || s.constructed || !utf8.Valid(s.content) {
				return "", invalid(ReasonFormat, "transaction id is not a string")
			}
			return string(s.content), nil
		}
	}
	return "", nil
}

// berTLV is one BER element. For constructed elements content holds the
// encoded children (without an end-of-contents marker).
type berTLV struct {
	tag         int // universal tag number, or 0x80|n for context-specific [n]
	constructed bool
	content     []byte
}

const maxBERDepth = 16

var errBER = errors.New("malformed BER")

// readBER reads one element (definite or indefinite length) from b.
func readBER(b []byte, depth int) (berTLV, []byte, error) {
	if depth > maxBERDepth || len(b) < 2 {
		return berTLV{}, nil, errBER
	}
	id := b[0]
	if id&0x1f == 0x1f {
		return berTLV{}, nil, errBER // high tag numbers do not occur in receipts
	}
	t := berTLV{tag: int(id & 0x1f), constructed: id&0x20 != 0}
	if id&0xc0 == 0x80 {
		t.tag |= 0x80
	}
	l := b[1]
	b = b[2:]
	switch {
	case l < 0x80:
		if int(l) > len(b) {
			return berTLV{}, nil, errBER
		}
		t.content, b = b[:l], b[l:]
	case l == 0x80:
		if !t.constructed {
			return berTLV{}, nil, errBER
		}
		start := b
		for {
			if len(b) >= 2 && b[0] == 0 && b[1] == 0 {
				t.content = start[:len(start)-len(b)]
				return t, b[2:], nil
			}
			var err error
			if _, b, err = readBER(b, depth+1); err != nil {
				return berTLV{}, nil, err
			}
		}
	default:
		n := int(l & 0x7f)
		if n > 4 || n > len(b) {
			return berTLV{}, nil, errBER
		}
		size := new(big.Int).SetBytes(b[:n]).Int64()
		b = b[n:]
		if size > int64(len(b)) {
			return berTLV{}, nil, errBER
		}
		t.content, b = b[:size], b[size:]
	}
	return t, b, nil
}

func berChildren(t berTLV, depth int) ([]berTLV, error) {
	if !t.constructed {
		return nil, errBER
	}
	var out []berTLV
	for b := t.content; len(b) > 0; {
		var c berTLV
		var err error
		if c, b, err = readBER(b, depth+1); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// berOctets returns the bytes of a primitive or constructed OCTET STRING.
func berOctets(t berTLV, depth int) ([]byte, error) {
	if t.tag != 0x04 {
		return nil, errBER
	}
	if !t.constructed {
		return t.content, nil
	}
	kids, err := berChildren(t, depth)
	if err != nil {
		return nil, err
	}
	var out []byte
	for _, k := range kids {
		b, err := berOctets(k, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// pkcs7Content returns the encapsulated content of a PKCS#7 SignedData:
// ContentInfo{oid, [0]{SignedData{version, digestAlgs, {oid, [0]{OCTET STRING}}, ...}}}.
func pkcs7Content(der []byte) ([]byte, error) {
	step := func(t berTLV, i, wantTag int) (berTLV, error) {
		kids, err := berChildren(t, 0)
		if err != nil || len(kids) <= i || kids[i].tag != wantTag {
			return berTLV{}, errBER
		}
		return kids[i], nil
	}
	ci, _, err := readBER(der, 0)
	if err != nil || ci.tag != 0x10 {
		return nil, errBER
	}
	t, err := step(ci, 1, 0x80) // [0]
	if err == nil {
		t, err = step(t, 0, 0x10) // SignedData
	}
	if err == nil {
		t, err = step(t, 2, 0x10) // encapContentInfo
	}
	if err == nil {
		t, err = step(t, 1, 0x80) // [0]
	}
	if err == nil {
		t, err = step(t, 0, 0x04) // OCTET STRING
	}
	if err != nil {
		return nil, err
	}
	return berOctets(t, 0)
}

type receiptAttribute struct {
	typ   int64
	value []byte
}

// receiptAttributes decodes SET OF SEQUENCE{type INTEGER, version INTEGER,
// value OCTET STRING}.
func receiptAttributes(b []byte) ([]receiptAttribute, error) {
	set, _, err := readBER(b, 0)
	if err != nil || set.tag != 0x11 {
		return nil, errBER
	}
	kids, err := berChildren(set, 0)
	if err != nil {
		return nil, err
	}
	out := make([]receiptAttribute, 0, len(kids))
	for _, k := range kids {
		f, err := berChildren(k, 1)
		if err != nil || k.tag != 0x10 || len(f) < 3 || f[0].tag != 0x02 || len(f[0].content) == 0 || len(f[0].content) > 4 {
			return nil, errBER
		}
		v, err := berOctets(f[2], 1)
		if err != nil {
			return nil, err
		}
		out = append(out, receiptAttribute{typ: new(big.Int).SetBytes(f[0].content).Int64(), value: v})
	}
	return out, nil
}
