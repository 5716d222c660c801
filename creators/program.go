package creators

import (
	"fmt"
	"slices"
	"time"
)

// Program is the studio's creator program: what codes and tips earn. The
// writer (package entitlements) and this package read the same value.
type Program struct {
	// CodeSharePPM is what a purchase or server spend under an active code
	// credits its creator, in parts per million (default 5%).
	CodeSharePPM int64
	// CodeDays is how long a code a player sets stays active (default 14).
	CodeDays int
	// Currencies the code share covers; empty means every currency.
	Currencies []string
	// OwnCodeAllowed lets a creator's linked player set their own code.
	OwnCodeAllowed bool
	// TipFeePPM is the studio's fee on a tip (default 0).
	TipFeePPM int64
	// TipDailyLimit is the most one player may tip per currency per UTC day,
	// in whole units (default 10,000).
	TipDailyLimit int64
	// Hold is how long a credit stays pending before it is available
	// (default 30 days, long enough for store refunds).
	Hold time.Duration
	// PayoutMin is the least a payout pays, per currency, in whole units
	// (default 1).
	PayoutMin int64
}

// DefaultProgram is the program with every setting at its default.
func DefaultProgram() Program {
	return Program{CodeSharePPM: 50_000, CodeDays: 14, TipDailyLimit: 10_000,
		Hold: 30 * 24 * time.Hour, PayoutMin: 1}
}

// Validate returns an error naming the first setting out of range.
func (p Program) Validate() error {
	switch {
	case p.CodeSharePPM < 0 || p.CodeSharePPM > MaxSharePPM:
		return fmt.Errorf("creator code share must be 0%% to 100%%")
	case p.CodeDays < 1 || p.CodeDays > 3660:
		return fmt.Errorf("creator code days must be 1 to 3660")
	case p.TipFeePPM < 0 || p.TipFeePPM > MaxSharePPM:
		return fmt.Errorf("creator tip fee must be 0%% to 100%%")
	case p.TipDailyLimit < 1:
		return fmt.Errorf("creator tip daily limit must be at least 1")
	case p.Hold < 0:
		return fmt.Errorf("creator hold must not be negative")
	case p.PayoutMin < 1:
		return fmt.Errorf("creator payout minimum must be at least 1")
	}
	return nil
}

// Covers reports whether the code share applies to currency.
func (p Program) Covers(currency string) bool {
	return len(p.Currencies) == 0 || slices.Contains(p.Currencies, currency)
}

// Journal kinds (creator_credits.kind).
const (
	KindCode     = "code"
	KindItem     = "item"
	KindTip      = "tip"
	KindReversal = "reversal"
	KindPayout   = "payout"
	// KindReinstatement gives back what reversals took when the store
	// reverses its refund (migrations/015).
	KindReinstatement = "reinstatement"
)

// Accounts a journal row moves micro-units from (see migrations/012).
const (
	AccountProgram = "system:creator_program"
	AccountTips    = "system:creator_tips"
	AccountPayouts = "system:creator_payouts"
)

// Event types in the outbox.
const (
	EventCredit   = "creator.credit"
	EventReversal = "creator.reversal"
	EventPayout   = "creator.payout"
	// EventReinstatement: a reversed refund gave a credit back.
	EventReinstatement = "creator.reinstatement"
)

// CreditRow is one journal row the writer inserts in a posting's
// transaction.
type CreditRow struct {
	CreatorID string `json:"creator_id"`
	Kind      string `json:"kind"`
	Source    string `json:"source_account"`
	Currency  string `json:"currency"`
	Micro     int64  `json:"micro"`
	Spent     int64  `json:"spent"`
}

// ItemShare is the share of a sale that goes to the creator of what it
// sells: an item's creator, or one of the creators of a bundle's contents.
type ItemShare struct {
	CreatorID string
	SharePPM  int64
}

// PurchaseCredits decides what one purchase or spend of spent units of
// currency credits: each creator of what it sells its share (none for a
// spend, or a sale of nothing creator-made), and the creator of the
// player's active code (codeCreator "" for none) the program's share,
// capped so that all of them together never exceed what was spent.
// Inactive creators must already be left out by the caller. A sale under
// the code of the item's own creator credits both shares to it.
func (p Program) PurchaseCredits(currency string, spent int64, itemShares []ItemShare, codeCreator string) []CreditRow {
	var rows []CreditRow
	left := int64(MaxSharePPM)
	for _, s := range itemShares {
		share := min(s.SharePPM, left)
		if s.CreatorID == "" || share <= 0 {
			continue
		}
		if m, ok := Credit(spent, share); ok && m > 0 {
			rows = append(rows, CreditRow{CreatorID: s.CreatorID, Kind: KindItem, Source: AccountProgram, Currency: currency, Micro: m, Spent: spent})
			left -= share
		}
	}
	if codeCreator != "" && p.Covers(currency) {
		if m, ok := Credit(spent, min(p.CodeSharePPM, left)); ok && m > 0 {
			rows = append(rows, CreditRow{CreatorID: codeCreator, Kind: KindCode, Source: AccountProgram, Currency: currency, Micro: m, Spent: spent})
		}
	}
	return rows
}

// TipCredit is what a tip of amount units earns its creator: the tip less
// the studio fee, exactly.
func (p Program) TipCredit(creator, currency string, amount int64) (CreditRow, bool) {
	m, ok := Credit(amount, MaxSharePPM-p.TipFeePPM)
	if !ok || m <= 0 {
		return CreditRow{}, false
	}
	return CreditRow{CreatorID: creator, Kind: KindTip, Source: AccountTips, Currency: currency, Micro: m, Spent: amount}, true
}
