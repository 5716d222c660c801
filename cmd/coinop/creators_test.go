package main

import (
	"flag"
	"io"
	"slices"
	"testing"
	"time"
)

func TestCreatorSettingsBecomeTheProgram(t *testing.T) {
	parse := func(env map[string]string) *config {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return bindSettings(fs, func(k string) string { return env[k] })
	}
	if p, err := creatorProgram(parse(nil)); p != nil || err != nil {
		t.Fatalf("off by default: %v, %v", p, err)
	}
	p, err := creatorProgram(parse(map[string]string{"COINOP_CREATOR_PROGRAM": "true"}))
	if err != nil || p.CodeSharePPM != 50_000 || p.CodeDays != 14 || p.Hold != 30*24*time.Hour || p.PayoutMin != 1 ||
		p.TipFeePPM != 0 || p.TipDailyLimit != 10_000 || p.Currencies != nil || p.OwnCodeAllowed {
		t.Fatalf("defaults = %+v, %v", p, err)
	}
	p, err = creatorProgram(parse(map[string]string{"COINOP_CREATOR_PROGRAM": "true", "COINOP_CREATOR_SHARE": "2.5%",
		"COINOP_CREATOR_TIP_FEE": "0.0001", "COINOP_CREATOR_CURRENCIES": "gems, gold", "COINOP_CREATOR_OWN_CODE": "true",
		"COINOP_CREATOR_HOLD": "0s", "COINOP_CREATOR_CODE_DAYS": "7"}))
	if err != nil || p.CodeSharePPM != 25_000 || p.TipFeePPM != 1 || !slices.Equal(p.Currencies, []string{"gems", "gold"}) ||
		!p.OwnCodeAllowed || p.Hold != 0 || p.CodeDays != 7 {
		t.Fatalf("set = %+v, %v", p, err)
	}
	for env, bad := range map[string]string{
		"COINOP_CREATOR_SHARE": "101%", "COINOP_CREATOR_TIP_FEE": "0.00001%", "COINOP_CREATOR_CODE_DAYS": "0",
		"COINOP_CREATOR_HOLD": "a month", "COINOP_CREATOR_PAYOUT_MIN": "0", "COINOP_CREATOR_OWN_CODE": "maybe",
		"COINOP_CREATOR_PROGRAM": "yes please", "COINOP_CREATOR_TIP_DAILY_LIMIT": "-1",
	} {
		env2 := map[string]string{"COINOP_CREATOR_PROGRAM": "true", env: bad}
		if env == "COINOP_CREATOR_PROGRAM" {
			env2 = map[string]string{env: bad}
		}
		if p, err := creatorProgram(parse(env2)); err == nil {
			t.Errorf("%s=%q accepted: %+v", env, bad, p)
		}
	}
}
