package stores

import (
	"testing"
	"time"

	"github.com/coinop/coinop/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestAppleShareSnapsToWholeUnits(t *testing.T) {
	for _, tt := range []struct {
		ppm, quantity int64
		num, den      int64
	}{
		{0, 1, 0, 1},
		{-5, 3, 0, 1},
		{1_000_000, 3, 1, 1},
		{2_000_000, 1, 1, 1},
		{500_000, 1, 500_000, 1_000_000},  // 50% of one: as stated
		{333_330, 3, 1, 3},                // Apple's 33.333% of 3: one unit
		{666_670, 3, 2, 3},                // 66.667% of 3: two units
		{333_330, 1, 333_330, 1_000_000},  // of one unit: as stated
		{400_000, 3, 400_000, 1_000_000},  // not a whole number of units
		{10, 1000, 10, 1_000_000},         // 0.001%: k would be 0
		{999_990, 1000, 999_990, 1000000}, // within rounding of 1000/1000 = all: as stated, never k = quantity
		{1_000, 1000, 1, 1000},            // 0.1% of 1000: one unit
	} {
		if num, den := appleShare(tt.ppm, tt.quantity); num != tt.num || den != tt.den {
			t.Errorf("appleShare(%d, %d) = %d/%d, want %d/%d", tt.ppm, tt.quantity, num, den, tt.num, tt.den)
		}
	}
}

func TestAccountTenure(t *testing.T) {
	const day = 24 * time.Hour
	for _, tt := range []struct {
		age  time.Duration
		want int32
	}{{0, 1}, {3*day - 1, 1}, {3 * day, 2}, {29 * day, 3}, {89 * day, 4}, {179 * day, 5}, {364 * day, 6}, {365 * day, 7}, {3000 * day, 7}} {
		if got := accountTenure(tt.age); got != tt.want {
			t.Errorf("accountTenure(%v) = %d, want %d", tt.age, got, tt.want)
		}
	}
}

func TestLifetimeDollarsBands(t *testing.T) {
	for _, tc := range []struct {
		milli int64
		want  int32
	}{
		{0, 1}, {10, 2}, {49_990, 2}, {50_000, 3}, {99_990, 3}, {100_000, 4}, {499_990, 4},
		{500_000, 5}, {999_990, 5}, {1_000_000, 6}, {1_999_990, 6}, {2_000_000, 7}, {1 << 40, 7},
	} {
		if got := lifetimeDollars(tc.milli); got != tc.want {
			t.Errorf("lifetimeDollars(%d) = %d, want %d", tc.milli, got, tc.want)
		}
	}
}
