package creators_test

import (
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/coinop/coinop/creators"
)

// The accrual rule on its own: over a million random prices, shares and
// orders, a creator's earnings equal the exact sum of their shares (floor
// of the exact rational sum, remainder carried) and never exceed what was
// spent.
func TestAccrualIsExactOverAMillionRandomPostings(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 2026))
	const n = 1_000_000
	const creatorsN = 7
	type acc struct {
		exact *big.Rat
		spent int64
	}
	accs := make([]acc, creatorsN)
	for i := range accs {
		accs[i].exact = new(big.Rat)
	}
	prices := make([]int64, n)
	shares := make([]int64, n)
	who := make([]int, n)
	for i := range n {
		switch rng.IntN(3) {
		case 0:
			prices[i] = 1 + rng.Int64N(9)
		case 1:
			prices[i] = 1 + rng.Int64N(10_000)
		default:
			prices[i] = 1 + rng.Int64N(1_000_000) // sums stay within int64 micro (9.2 × 10^12 units)
		}
		shares[i] = rng.Int64N(creators.MaxSharePPM + 1)
		who[i] = rng.IntN(creatorsN)
	}
	// Two orders: as drawn and shuffled; the result must not depend on it.
	order := rng.Perm(n)
	run := func(idx func(int) int) []int64 {
		out := make([]int64, creatorsN)
		for k := range n {
			i := idx(k)
			m, ok := creators.Credit(prices[i], shares[i])
			if !ok {
				t.Fatalf("credit of %d at %d ppm overflowed", prices[i], shares[i])
			}
			out[who[i]] += m
		}
		return out
	}
	inOrder := run(func(k int) int { return k })
	shuffled := run(func(k int) int { return order[k] })
	for i := range n {
		a := &accs[who[i]]
		a.spent += prices[i]
		a.exact.Add(a.exact, new(big.Rat).SetFrac64(prices[i]*shares[i], creators.MicroPerUnit))
	}
	for c := range creatorsN {
		if inOrder[c] != shuffled[c] {
			t.Fatalf("creator %d: %d micro in order, %d shuffled", c, inOrder[c], shuffled[c])
		}
		units, rem := creators.Earned(inOrder[c])
		want := new(big.Int).Quo(accs[c].exact.Num(), accs[c].exact.Denom()) // floor: positive
		if want.Int64() != units {
			t.Errorf("creator %d: earned %d units, exact sum floors to %s (%s)", c, units, want, accs[c].exact.FloatString(6))
		}
		back := new(big.Rat).SetFrac64(units*creators.MicroPerUnit+rem, creators.MicroPerUnit)
		if back.Cmp(accs[c].exact) != 0 {
			t.Errorf("creator %d: %d units + %d micro is not the exact sum %s", c, units, rem, accs[c].exact.FloatString(6))
		}
		if units > accs[c].spent {
			t.Errorf("creator %d earned %d, more than the %d spent", c, units, accs[c].spent)
		}
	}
}

func TestAMillionPurchasesOfOneGemAtFivePercentEarnFiftyThousand(t *testing.T) {
	p := creators.DefaultProgram()
	var micro int64
	for range 1_000_000 {
		for _, r := range p.PurchaseCredits("gems", 1, nil, "ninja") {
			micro += r.Micro
		}
	}
	if units, rem := creators.Earned(micro); units != 50_000 || rem != 0 {
		t.Fatalf("earned %d units + %d micro, want exactly 50000", units, rem)
	}
}

func TestCodeAndItemSharesTogetherNeverExceedTheSpend(t *testing.T) {
	p := creators.DefaultProgram()
	rows := p.PurchaseCredits("gems", 10, []creators.ItemShare{{CreatorID: "maker", SharePPM: 980_000}}, "streamer")
	var sum int64
	for _, r := range rows {
		sum += r.Micro
	}
	if len(rows) != 2 || sum != 10*creators.MicroPerUnit || rows[1].Micro != 200_000 {
		t.Fatalf("rows %+v, want 98%% to the maker and the 2%% left to the code", rows)
	}
}

func TestShares(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ppm  int64
		fail bool
	}{
		{"5%", 50_000, false}, {"5", 50_000, false}, {"2.5%", 25_000, false}, {"30%", 300_000, false},
		{"0.0001%", 1, false}, {"100%", 1_000_000, false}, {"0", 0, false},
		{"100.0001%", 0, true}, {"-1%", 0, true}, {"1.00001", 0, true}, {"", 0, true}, {"abc", 0, true}, {"1e2", 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := creators.ParseShare(tc.in)
			if (err != nil) != tc.fail || got != tc.ppm {
				t.Fatalf("ParseShare(%q) = %d, %v; want %d, fail=%v", tc.in, got, err, tc.ppm, tc.fail)
			}
			if !tc.fail {
				back, err := creators.ParseShare(creators.FormatShare(got))
				if err != nil || back != got {
					t.Fatalf("FormatShare(%d) = %q does not read back", got, creators.FormatShare(got))
				}
			}
		})
	}
}

func TestProportionNeverReversesMoreThanCredited(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		micro := rng.Int64N(1 << 62)
		den := 1 + rng.Int64N(1<<40)
		num := rng.Int64N(den + 1)
		got, err := creators.Proportion(micro, num, den)
		if err != nil {
			t.Fatal(err)
		}
		want := new(big.Int).Quo(new(big.Int).Mul(big.NewInt(micro), big.NewInt(num)), big.NewInt(den))
		if want.Int64() != got || got > micro {
			t.Fatalf("Proportion(%d, %d, %d) = %d, want %s", micro, num, den, got, want)
		}
	}
}

func FuzzParseShare(f *testing.F) {
	for _, s := range []string{"5%", "2.5", "100%", "0.0001%", "", "%", "1.", ".5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ppm, err := creators.ParseShare(s)
		if err != nil {
			return
		}
		if ppm < 0 || ppm > creators.MaxSharePPM {
			t.Fatalf("ParseShare(%q) = %d out of range", s, ppm)
		}
		if back, err := creators.ParseShare(creators.FormatShare(ppm)); err != nil || back != ppm {
			t.Fatalf("round trip of %q: %d → %q → %d, %v", s, ppm, creators.FormatShare(ppm), back, err)
		}
	})
}
