package entitlements

// PurchaseBatch sends reqs to the writer as one group-commit batch, in this
// order, and returns each one's outcome: what concurrent purchases would
// get if they arrived together.
func PurchaseBatch(l *Ledger, reqs []PurchaseRequest) ([]Outcome, []error) {
	outs, errs := make([]Outcome, len(reqs)), make([]error, len(reqs))
	g := l.group
	if g == nil {
		g = &groupCommit{l: l, lanes: 1, maxBatch: len(reqs), timeout: l.keyWait * 6}
	}
	var ws []*waiter
	var idx []int
	for i, r := range reqs {
		p, err := l.purchasePosting(r)
		if err != nil {
			errs[i] = err
			continue
		}
		ws = append(ws, &waiter{p: p, done: make(chan struct{})})
		idx = append(idx, i)
	}
	g.execute(ws)
	for j, w := range ws {
		<-w.done
		outs[idx[j]], errs[idx[j]] = w.out.res.Outcome, w.out.err
	}
	return outs, errs
}

// SetWriterHooks runs before between a batch's reads and its writes (with
// the backend's pid) and after once its commit returned; an error from
// either fails the batch as a whole.
func SetWriterHooks(l *Ledger, before func(pid uint32) error, after func() error) {
	l.hookBeforeWrite, l.hookAfterCommit = before, after
}
