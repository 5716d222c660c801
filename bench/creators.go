package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop/loadtest"
)

// The creator-code purchases (issue 17): the same purchase as the plain run,
// by players who each support a creator code, so every purchase credits a
// creator 5% in its own ledger transaction. One run spreads the players over
// as many creators; the other has every player support one creator, the
// hot-row case: credits are appended rows, so many players crediting one
// creator must not queue behind each other.

// codeRunPlayers are the players of one creator-code run and the tokens file
// the load tool reads them from.
type codeRunPlayers struct {
	TokensPath string
	Creators   []string // the creators their codes credit
}

// creatorCodePlayers creates `creators` creators with one code each and n
// players "bench-<group>-<i>" supporting them in turn (none with no
// creators: the plain purchases' players), and writes their tokens to a
// file for `coinop loadtest --tokens` (which funds them each run, as it
// funds the players it creates).
func (b *bench) creatorCodePlayers(ctx context.Context, client *loadtest.Client, group string, creators, n int) (codeRunPlayers, error) {
	out := codeRunPlayers{}
	admin := http.Header{"Authorization": {"Bearer " + b.admin}}
	for i := range creators {
		id := fmt.Sprintf("bench-%s-creator-%d", group, i+1)
		body := map[string]any{"creator_id": id, "display_name": id, "codes": []string{codeOf(id)}}
		r, err := client.Do(ctx, http.MethodPost, "/admin/v1/creators", "", body, admin)
		if err != nil {
			return out, fmt.Errorf("creating creator %s: %w", id, err)
		}
		if r.Status != http.StatusCreated {
			return out, fmt.Errorf("creating creator %s: HTTP %d %s", id, r.Status, r.Body)
		}
		out.Creators = append(out.Creators, id)
	}
	var tokens strings.Builder
	for i := range n {
		player := fmt.Sprintf("bench-%s-%d", group, i+1)
		tok, err := loadtest.MintToken([]byte(b.jwt), player, time.Now(), 2*time.Hour, "", "")
		if err != nil {
			return out, err
		}
		fmt.Fprintf(&tokens, "%s %s\n", player, tok)
		if creators == 0 {
			continue
		}
		creator := out.Creators[i%len(out.Creators)]
		r, err := client.Do(ctx, http.MethodPut, "/v1/creator-code", tok, map[string]string{"code": codeOf(creator)}, nil)
		if err != nil {
			return out, fmt.Errorf("setting %s's creator code: %w", player, err)
		}
		var pc struct {
			CreatorID string `json:"creator_id"`
			Active    bool   `json:"active"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &pc) != nil || !pc.Active || pc.CreatorID != creator {
			return out, fmt.Errorf("setting %s's creator code: HTTP %d %s", player, r.Status, r.Body)
		}
	}
	out.TokensPath = filepath.Join(b.tmp, "tokens-"+group+".txt")
	return out, os.WriteFile(out.TokensPath, []byte(tokens.String()), 0o600)
}

// codeOf is the one code the bench gives a creator: its id, which is within
// the 3–24 characters a code may have for the ids creatorCodePlayers makes.
func codeOf(creator string) string { return strings.TrimPrefix(creator, "bench-") }

// creditedMicro sums what the creators' earnings say they were credited, in
// micro-units of each currency, pending or not: the bench's check that the
// creator runs did credit (a run whose purchases credited nothing would
// measure plain purchases twice).
func (b *bench) creditedMicro(ctx context.Context, client *loadtest.Client, creators []string) (map[string]int64, error) {
	total := map[string]int64{}
	admin := http.Header{"Authorization": {"Bearer " + b.admin}}
	for _, id := range creators {
		r, err := client.Do(ctx, http.MethodGet, "/admin/v1/creators/"+id+"/earnings", "", nil, admin)
		if err != nil {
			return nil, err
		}
		var e struct {
			Earnings []struct {
				Currency    string `json:"currency"`
				EarnedMicro int64  `json:"earned_micro"`
			} `json:"earnings"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &e) != nil {
			return nil, fmt.Errorf("earnings of %s: HTTP %d %s", id, r.Status, r.Body)
		}
		for _, x := range e.Earnings {
			total[x.Currency] += x.EarnedMicro
		}
	}
	return total, nil
}

// formatMicro writes micro-units as a decimal number of units.
func formatMicro(micro int64) string {
	s := strconv.FormatInt(micro/1_000_000, 10) + "." + fmt.Sprintf("%06d", micro%1_000_000)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}
