package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSnapshotLookups(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("", 3600))
	s, err := NewSnapshot(7, at, testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 7 || !s.PublishedAt.Equal(at) || s.PublishedAt.Location() != time.UTC {
		t.Errorf("Version, PublishedAt = %d, %v", s.Version, s.PublishedAt)
	}
	if got := s.ETag(); got != `"catalog-7"` {
		t.Errorf("ETag = %s", got)
	}
	if it, ok := s.Item("potion"); !ok || it.MaxPerPlayer != 99 {
		t.Errorf("Item(potion) = %+v, %v", it, ok)
	}
	if _, ok := s.Item("starter"); ok {
		t.Error("Item(starter) found a bundle")
	}
	if b, ok := s.Bundle("starter"); !ok || b.Contents.Currencies["gold"] != 1000 {
		t.Errorf("Bundle(starter) = %+v, %v", b, ok)
	}
	if _, ok := s.Bundle("sword"); ok {
		t.Error("Bundle(sword) found an item")
	}
	if c, ok := s.Currency("gems"); !ok || c.Name != "Gems" {
		t.Errorf("Currency(gems) = %+v, %v", c, ok)
	}
	if _, ok := s.Currency("bronze"); ok {
		t.Error("Currency(bronze) found")
	}
	if sp, ok := s.StoreProduct(StoreGoogle, "com.example.gems100"); !ok || sp.Store != StoreGoogle {
		t.Errorf("StoreProduct(google, gems100) = %+v, %v", sp, ok)
	}
	if _, ok := s.StoreProduct(StoreApple, "com.example.gems500"); ok {
		t.Error("StoreProduct(apple, gems500) found")
	}
	ids := s.CurrencyIDs()
	if want := []string{"gems", "gold", "silver"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("CurrencyIDs = %v, want %v", ids, want)
	}
	ids[0] = "changed"
	if s.CurrencyIDs()[0] != "gems" {
		t.Error("changing the returned CurrencyIDs changed the snapshot")
	}
}

func TestSnapshotJSONRoundTrips(t *testing.T) {
	c := testCatalog()
	c.Items[2].AvailableFrom = ptr(date(2026, 1, 1))
	c.Items[2].Name = "Swords & <Shields>"
	s, err := NewSnapshot(1, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(s.JSON(), FormatJSON)
	if err != nil {
		t.Fatalf("Parse(JSON()): %v\n%s", err, s.JSON())
	}
	if !reflect.DeepEqual(back, s.Catalog) {
		t.Errorf("JSON() parses to a different catalog:\n got %+v\nwant %+v", back, s.Catalog)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("snapshot catalog differs from the input:\n got %+v\nwant %+v", back, c)
	}
	if !bytes.Contains(s.JSON(), []byte(`"Swords & <Shields>"`)) {
		t.Errorf("JSON() escapes HTML: %s", s.JSON())
	}
}

func TestSnapshotDoesNotShareTheInput(t *testing.T) {
	c := testCatalog()
	s, err := NewSnapshot(1, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	c.Items[0].Prices[0].Amount = 1
	c.Bundles[0].Contents.Items["potion"] = 50
	c.Currencies[0].Name = "Changed"
	sword, _ := s.Item("sword")
	starter, _ := s.Bundle("starter")
	gold, _ := s.Currency("gold")
	if sword.Prices[0].Amount != 500 || starter.Contents.Items["potion"] != 5 || gold.Name != "Gold" {
		t.Error("changing the input catalog changed the snapshot")
	}
}

func TestNewSnapshotRejectsInvalidCatalogs(t *testing.T) {
	c := testCatalog()
	c.Items[0].Kind = ""
	s, err := NewSnapshot(1, time.Now(), c)
	var ve *ValidationError
	if s != nil || !errors.As(err, &ve) {
		t.Fatalf("NewSnapshot = %v, %v; want nil and *ValidationError", s, err)
	}
}

func TestSnapshotOfALargeCatalog(t *testing.T) {
	// The size limit is for documents users send. A valid catalog whose
	// canonical JSON ends up above it (YAML grows when quoted as JSON) must
	// still publish and load.
	c := testCatalog()
	for i := 0; len(c.Items) < 16_000; i++ {
		c.Items = append(c.Items, Item{ID: fmt.Sprintf("item-%d", i), Name: strings.Repeat("n", MaxNameLength), Kind: KindConsumable,
			Prices: []Price{{"gold", int64(i + 1)}}})
	}
	s, err := NewSnapshot(1, time.Now(), c)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	if len(s.JSON()) <= MaxDocumentSize {
		t.Fatalf("test catalog is only %d bytes; make it larger than MaxDocumentSize", len(s.JSON()))
	}
	if _, err := snapshotFromDocument(1, time.Now(), s.JSON()); err != nil {
		t.Errorf("loading it back: %v", err)
	}
}
