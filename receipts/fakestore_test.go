package receipts

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/coinop/coinop/receipts/fakestore"
)

func TestFakeStoreCAPersistsAcrossProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	minter, err := fakestore.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A second process (the server) loads the same chain from disk.
	server, err := fakestore.LoadOrCreateCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !server.Root.Equal(minter.Root) || !server.Leaf.Equal(minter.Leaf) {
		t.Fatal("reloaded CA differs")
	}
	fi, err := os.Stat(filepath.Join(dir, "leaf-key.pem"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("leaf key file: %v %v", fi, err)
	}
	c := goodClaims()
	c.ProductID = "gems.100"
	jws := mint(t, minter, c)
	v := newVerifier(t, server.Roots(), EnvSandbox, testBundle)
	if _, err := v.VerifyTransaction(jws, VerifyOptions{}); err != nil {
		t.Fatalf("server could not verify what the minter signed: %v", err)
	}
	body, err := minter.MintNotification(fakestore.NotificationClaims{Type: "ONE_TIME_CHARGE", BundleID: testBundle, Transaction: &c})
	if err != nil {
		t.Fatal(err)
	}
	n, err := v.VerifyNotification(body, VerifyOptions{})
	if err != nil || n.Purchase == nil || n.Purchase.ProductID != "gems.100" {
		t.Fatalf("%+v %v", n, err)
	}
	// The real Apple root does not trust the fake chain.
	if _, err := newVerifier(t, nil, EnvSandbox, testBundle).VerifyTransaction(jws, VerifyOptions{}); ReasonOf(err) != ReasonChain {
		t.Fatalf("Apple's root accepted a fake transaction: %v", err)
	}
}

func TestFakeStoreCARefusesACorruptDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := fakestore.LoadOrCreateCA(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "leaf.pem"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fakestore.LoadOrCreateCA(dir); err == nil {
		t.Fatal("loaded a corrupt CA")
	}
}
