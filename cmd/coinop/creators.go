package main

// The creator program's settings (COINOP_CREATOR_*), read into a
// creators.Program that serve hands to both the ledger writer and the
// creators service.

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/coinop/coinop/creators"
)

// creatorProgram returns the program the settings describe, or nil when
// COINOP_CREATOR_PROGRAM is off.
func creatorProgram(cfg *config) (*creators.Program, error) {
	on, err := cfg.boolean("COINOP_CREATOR_PROGRAM")
	if err != nil || !on {
		return nil, err
	}
	p := creators.DefaultProgram()
	if p.CodeSharePPM, err = percentPPM(cfg, "COINOP_CREATOR_SHARE"); err != nil {
		return nil, err
	}
	if p.TipFeePPM, err = percentPPM(cfg, "COINOP_CREATOR_TIP_FEE"); err != nil {
		return nil, err
	}
	if p.CodeDays, err = cfg.integer("COINOP_CREATOR_CODE_DAYS"); err != nil {
		return nil, err
	}
	if p.Hold, err = cfg.duration("COINOP_CREATOR_HOLD"); err != nil {
		return nil, err
	}
	n, err := cfg.integer("COINOP_CREATOR_PAYOUT_MIN")
	if err != nil {
		return nil, err
	}
	p.PayoutMin = int64(n)
	if n, err = cfg.integer("COINOP_CREATOR_TIP_DAILY_LIMIT"); err != nil {
		return nil, err
	}
	p.TipDailyLimit = int64(n)
	p.Currencies = splitList(cfg.str("COINOP_CREATOR_CURRENCIES"))
	if p.OwnCodeAllowed, err = cfg.boolean("COINOP_CREATOR_OWN_CODE"); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("COINOP_CREATOR_*: %w", err)
	}
	return &p, nil
}

// percentPPM reads a percentage like "5%", "2.5" or "0.0001%" exactly (no
// floating point) as parts per million.
func percentPPM(cfg *config, env string) (int64, error) {
	v := strings.TrimSuffix(strings.TrimSpace(cfg.str(env)), "%")
	r, ok := new(big.Rat).SetString(v)
	if !ok || v == "" || strings.ContainsAny(v, "/eE") {
		return 0, fmt.Errorf("%s: %q is not a percentage like 5%%", env, cfg.str(env))
	}
	r.Mul(r, big.NewRat(10_000, 1))
	if !r.IsInt() || r.Sign() < 0 || r.Num().Cmp(big.NewInt(creators.MaxSharePPM)) > 0 {
		return 0, fmt.Errorf("%s: %q must be 0%% to 100%% in steps of 0.0001%%", env, cfg.str(env))
	}
	return r.Num().Int64(), nil
}
