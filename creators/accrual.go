package creators

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// MicroPerUnit is how many micro-units make one unit of a currency.
const MicroPerUnit = 1_000_000

// MaxSharePPM is a share of 100%.
const MaxSharePPM = 1_000_000

// Credit returns the micro-units a share of share_ppm earns on amount whole
// units spent: exactly amount × share_ppm, never rounded. ok is false for a
// negative input, a share above 100% or a product that overflows int64
// (amounts are bounded by catalog.MaxAmount × MaxQuantity = 10^18, so only
// an amount above about 9.2 × 10^12 at 100% could).
func Credit(amount, sharePPM int64) (micro int64, ok bool) {
	if amount < 0 || sharePPM < 0 || sharePPM > MaxSharePPM {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(amount), uint64(sharePPM))
	if hi != 0 || lo > math.MaxInt64 {
		return 0, false
	}
	return int64(lo), true
}

// Earned splits a sum of micro-units into whole units and the remainder
// carried: units = floor(micro / 10^6), 0 <= remainder < 10^6. A negative
// sum (a debt) floors towards minus infinity, so its units are what must be
// earned back before anything is paid again.
func Earned(micro int64) (units, remainder int64) {
	units, remainder = micro/MicroPerUnit, micro%MicroPerUnit
	if remainder < 0 {
		units--
		remainder += MicroPerUnit
	}
	return units, remainder
}

// Proportion returns floor(micro × num / den) for 0 <= num <= den, den > 0,
// without overflow: the part of a credit a partial refund reverses. Rounding
// down leaves the creator at most one micro-unit per reversal, never more
// reversed than was credited.
func Proportion(micro, num, den int64) (int64, error) {
	if micro < 0 || num < 0 || den <= 0 || num > den {
		return 0, fmt.Errorf("creators: proportion %d × %d/%d out of range", micro, num, den)
	}
	hi, lo := bits.Mul64(uint64(micro), uint64(num))
	q, _ := bits.Div64(hi, lo, uint64(den)) // hi < den since num <= den
	return int64(q), nil
}

// ParseShare reads a share written as a percentage with at most four
// decimals ("5%", "2.5", "30%", "0.0001%") into parts per million, exactly
// (no floating point). Errors for anything else or above 100%.
func ParseShare(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	whole, frac, _ := strings.Cut(t, ".")
	if whole == "" || len(whole) > 3 || len(frac) > 4 {
		return 0, fmt.Errorf("share %q: want a percentage like 5%% or 2.5%% (at most 4 decimals)", s)
	}
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("share %q: want a percentage like 5%% or 2.5%%", s)
		}
	}
	w, _ := strconv.ParseInt(whole, 10, 64)
	f, _ := strconv.ParseInt((frac + "0000")[:4], 10, 64)
	ppm := w*10_000 + f
	if ppm > MaxSharePPM {
		return 0, fmt.Errorf("share %q: at most 100%%", s)
	}
	return ppm, nil
}

// FormatShare writes parts per million as a percentage ("5%", "2.5%").
func FormatShare(ppm int64) string {
	s := strconv.FormatInt(ppm/10_000, 10)
	if f := ppm % 10_000; f != 0 {
		s += strings.TrimRight("."+fmt.Sprintf("%04d", f), "0")
	}
	return s + "%"
}

// FormatMicro writes micro-units as a decimal amount ("0.05", "-1.5", "3").
func FormatMicro(micro int64) string {
	sign := ""
	u := uint64(micro)
	if micro < 0 {
		sign, u = "-", uint64(-(micro+1))+1
	}
	s := sign + strconv.FormatUint(u/MicroPerUnit, 10)
	if f := u % MicroPerUnit; f != 0 {
		s += strings.TrimRight("."+fmt.Sprintf("%06d", f), "0")
	}
	return s
}
