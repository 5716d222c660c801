package loadtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fakeStoreDir writes a CA directory shaped like the fake store's (root,
// intermediate, leaf and the leaf's key); one self-signed certificate
// stands for all three, which is all the in-package fake needs.
func fakeStoreDir(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test fake store"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, blk := range map[string]*pem.Block{
		"root.pem": {Type: "CERTIFICATE", Bytes: der}, "intermediate.pem": {Type: "CERTIFICATE", Bytes: der},
		"leaf.pem": {Type: "CERTIFICATE", Bytes: der}, "leaf-key.pem": {Type: "PRIVATE KEY", Bytes: kder},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestMintedTransactionsVerifyWithTheLeafInTheirChain(t *testing.T) {
	s, err := LoadAppleSigner(fakeStoreDir(t), "com.example.game", "Sandbox")
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.MintTransaction(StoreTx{TransactionID: "3001", ProductID: "gems", PlayerID: "p1", PurchasedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(jws, ".")
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h struct {
		Alg string   `json:"alg"`
		X5C []string `json:"x5c"`
	}
	if err := json.Unmarshal(hb, &h); err != nil || h.Alg != "ES256" || len(h.X5C) != 3 {
		t.Fatalf("header %s: %v", hb, err)
	}
	der, _ := base64.StdEncoding.DecodeString(h.X5C[0])
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(leaf.PublicKey.(*ecdsa.PublicKey), sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		t.Fatal("signature does not verify with the x5c leaf")
	}
	p := jwsPayload(jws)
	if p["transactionId"] != "3001" || p["bundleId"] != "com.example.game" || p["environment"] != "Sandbox" || p["appAccountToken"] != AppAccountToken("p1") {
		t.Fatalf("payload %v", p)
	}
	body, id, err := s.MintRefund(StoreTx{TransactionID: "3001", ProductID: "gems", PlayerID: "p1", PurchasedAt: time.Now()}, time.Now())
	if err != nil || id == "" {
		t.Fatal(err)
	}
	var env map[string]string
	json.Unmarshal(body, &env)
	n := jwsPayload(env["signedPayload"])
	tx := jwsPayload(n["data"].(map[string]any)["signedTransactionInfo"].(string))
	if n["notificationType"] != "REFUND" || n["notificationUUID"] != id || tx["revocationDate"] == nil {
		t.Fatalf("notification %v, transaction %v", n, tx)
	}
}

func TestLoadAppleSignerErrors(t *testing.T) {
	dir := fakeStoreDir(t)
	if _, err := LoadAppleSigner(t.TempDir(), "b", "Sandbox"); err == nil || !strings.Contains(err.Error(), "leaf.pem") {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := LoadAppleSigner(dir, "", "Sandbox"); err == nil || !strings.Contains(err.Error(), "bundle id") {
		t.Errorf("no bundle id: %v", err)
	}
	if _, err := LoadAppleSigner(dir, "b", "sandbox"); err == nil || !strings.Contains(err.Error(), "want Sandbox") {
		t.Errorf("bad environment: %v", err)
	}
	other := fakeStoreDir(t)
	b, _ := os.ReadFile(filepath.Join(other, "leaf-key.pem"))
	os.WriteFile(filepath.Join(dir, "leaf-key.pem"), b, 0o600)
	if _, err := LoadAppleSigner(dir, "b", "Sandbox"); err == nil || !strings.Contains(err.Error(), "not the key of leaf.pem") {
		t.Errorf("mismatched key: %v", err)
	}
}

func chaosArgs(dir string) []string {
	return []string{"--rate", "150", "--duration", "1s", "--players", "5", "--seed", "21",
		"--mix", "receipt=5,wallet=2,purchase=1", "--fake-store-dir", dir, "--apple-bundle-id", "com.example.game",
		"--refund-share", "0.5", "--refund-waves", "2", "--duplicate-share", "1", "--abandon-share", "0.3", "--early-refund-share", "0.1", "--refund-wait", "5s"}
}

// TestStoreChaosAgainstAnHonestServer: duplicated, shuffled and abandoned
// refund deliveries against a server that applies each refund once pass.
func TestStoreChaosAgainstAnHonestServer(t *testing.T) {
	f := newFakeCoinop()
	report := filepath.Join(t.TempDir(), "chaos.json")
	code, out, errOut := runCommand(t, f, f.start(t), append(chaosArgs(fakeStoreDir(t)), "--out", report)...)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "store chaos:") || !strings.Contains(out, "waves:") || !strings.Contains(out, "ledger transactions: OK") {
		t.Fatalf("no chaos summary:\n%s", out)
	}
	f.mu.Lock()
	refunded, redeemed := len(f.refundedTx), len(f.storeTx)
	f.mu.Unlock()
	// The report keeps the chaos settings for --replay.
	rep := readReportFile(t, report)
	if c := rep.Config.Chaos; c == nil || c.RefundShare != 0.5 || c.Waves != 2 || c.EarlyShare != 0.1 {
		t.Fatalf("report configuration lacks the chaos settings: %+v", rep.Config.Chaos)
	}
	cfg, err := parse(t, testEnv, "--replay", report, "--fake-store-dir", "x")
	if err != nil || cfg.Chaos != *rep.Config.Chaos {
		t.Fatalf("replayed chaos %+v, %v", cfg.Chaos, err)
	}
	if !strings.Contains(out, "refunds before redemption:") || strings.Contains(out, "refunds before redemption: 0 redemptions refused") {
		t.Fatalf("no refund overtook its redemption:\n%s", out)
	}
	if redeemed < 20 || refunded == 0 {
		t.Fatalf("redeemed %d refunded %d: the chaos did too little to prove anything", redeemed, refunded)
	}
}

// TestStoreChaosCatchesARefundAppliedTwice is the deliberately broken
// server: its refund guard lets one transaction be refunded by a duplicate
// delivery. The run must fail and say which transaction.
func TestStoreChaosCatchesARefundAppliedTwice(t *testing.T) {
	f := newFakeCoinop()
	f.doubleRefund = true
	code, out, errOut := runCommand(t, f, f.start(t), chaosArgs(fakeStoreDir(t))...)
	if code != ExitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	f.mu.Lock()
	broken := f.brokenTx
	f.mu.Unlock()
	applied := regexp.MustCompile(`refund of store transaction ` + regexp.QuoteMeta(broken) + ` was applied [2-9] times`)
	if broken == "" || !applied.MatchString(out) {
		t.Fatalf("the double refund of %q is not reported:\n%s", broken, out)
	}
}

// TestStoreChaosCatchesARefundThatOvertookItsRedemption: a server that
// forgets a refund arriving before the redemption grants the redemption
// and keeps it. The run must fail.
func TestStoreChaosCatchesARefundThatOvertookItsRedemption(t *testing.T) {
	f := newFakeCoinop()
	f.forgetEarlyRefunds = true
	args := append(chaosArgs(fakeStoreDir(t)), "--early-refund-share", "0.3", "--refund-wait", "300ms")
	code, out, errOut := runCommand(t, f, f.start(t), args...)
	if code != ExitFailed || !strings.Contains(out, "was accepted but never applied") {
		t.Fatalf("exit %d, want 1 naming the refund never applied\n%s\n%s", code, out, errOut)
	}
}

func TestStoreChaosFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--refund-share", "0.5"}, "needs the fake store"},
		{[]string{"--fake-store-dir", "x", "--refund-share", "2"}, "--refund-share must be in [0, 1]"},
		{[]string{"--fake-store-dir", "x", "--refund-waves", "0"}, "--refund-waves"},
		{[]string{"--fake-store-dir", "x", "--refund-wait", "0s"}, "--refund-wait"},
		{[]string{"--fake-store-dir", "x", "--early-refund-share", "-0.1"}, "--early-refund-share must be in [0, 1]"},
	} {
		if _, err := parse(t, testEnv, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
