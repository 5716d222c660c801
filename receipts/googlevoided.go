package receipts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"google.golang.org/api/androidpublisher/v3"
	"google.golang.org/api/option"
)

// VoidedPurchasesAPI lists Google Play voided purchases
// (purchases.voidedpurchases.list): refunds, chargebacks and revocations of
// the last 30 days, whether or not their notification arrived. See
// NewVoidedPurchasesAPI.
type VoidedPurchasesAPI interface {
	ListVoided(ctx context.Context, packageName string, startMillis, endMillis int64, token string) (*androidpublisher.VoidedPurchasesListResponse, error)
}

// VoidedPurchasesConfig configures NewVoidedPurchasesAPI.
type VoidedPurchasesConfig struct {
	// ServiceAccountJSON is the service account key the Play Developer API
	// is called with (the one NewPlayAPI takes).
	ServiceAccountJSON []byte
	// HTTPClient carries the OAuth token requests and the API calls (nil:
	// a client with a 30 s timeout).
	HTTPClient *http.Client
	// BaseURL replaces https://androidpublisher.googleapis.com (scheme and
	// authority); for fakes.
	BaseURL string
}

// NewVoidedPurchasesAPI returns a client of the Voided Purchases API. It is
// coinop's own rather than go-iap's VoidedPurchases, which cannot ask for
// quantity-based partial refunds (includeQuantityBasedPartialRefund).
func NewVoidedPurchasesAPI(cfg VoidedPurchasesConfig) (VoidedPurchasesAPI, error) {
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, hc)
	conf, err := google.JWTConfigFromJSON(cfg.ServiceAccountJSON, androidpublisher.AndroidpublisherScope)
	if err != nil {
		return nil, fmt.Errorf("receipts: voided purchases: %w", err)
	}
	opts := []option.ClientOption{option.WithHTTPClient(conf.Client(ctx))}
	if cfg.BaseURL != "" {
		opts = append(opts, option.WithEndpoint(strings.TrimRight(cfg.BaseURL, "/")+"/"))
	}
	svc, err := androidpublisher.NewService(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("receipts: voided purchases: %w", err)
	}
	return voidedAPI{svc: androidpublisher.NewPurchasesVoidedpurchasesService(svc)}, nil
}

type voidedAPI struct {
	svc *androidpublisher.PurchasesVoidedpurchasesService
}

// voidedPageSize is the most the API returns per page.
const voidedPageSize = 1000

func (v voidedAPI) ListVoided(ctx context.Context, pkg string, start, end int64, token string) (*androidpublisher.VoidedPurchasesListResponse, error) {
	// type=1: subscriptions too, not only one-time products.
	call := v.svc.List(pkg).StartTime(start).EndTime(end).Type(1).IncludeQuantityBasedPartialRefund(true).
		MaxResults(voidedPageSize).Context(ctx)
	if token != "" {
		call = call.Token(token)
	}
	return call.Do()
}

// VoidedPurchase is one voided purchase as the Voided Purchases API lists it.
type VoidedPurchase struct {
	PurchaseToken string
	// OrderID names the voided order (a subscription renewal has its own).
	OrderID string
	// VoidedQuantity is set for a quantity-based partial refund: how many
	// of the purchase's quantity this voiding refunded.
	VoidedQuantity int64
	PurchasedAt    time.Time
	VoidedAt       time.Time
	// Reason and Source are Google's voidedReason and voidedSource codes.
	Reason, Source int64
}

// VoidedPage is one page of voided purchases; NextToken continues it.
type VoidedPage struct {
	Purchases []VoidedPurchase
	NextToken string
}

// maxVoidedSpan is how far back the Voided Purchases API answers.
const maxVoidedSpan = 30 * 24 * time.Hour

// VoidedPurchases lists the purchases voided between start and end (at
// most 30 days ago, which is all the API keeps), one page per call; token
// is the previous page's NextToken. Errors as VerifyProduct.
func (g *GooglePlay) VoidedPurchases(ctx context.Context, api VoidedPurchasesAPI, start, end time.Time, token string) (VoidedPage, error) {
	if api == nil {
		return VoidedPage{}, errors.New("receipts: voided purchases: nil VoidedPurchasesAPI")
	}
	if oldest := end.Add(-maxVoidedSpan + time.Minute); start.Before(oldest) {
		start = oldest
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	res, err := api.ListVoided(ctx, g.cfg.PackageName, start.UnixMilli(), end.UnixMilli(), token)
	if err != nil {
		return VoidedPage{}, playError("voidedpurchases.list", err)
	}
	var page VoidedPage
	if res == nil {
		return page, nil
	}
	for _, v := range res.VoidedPurchases {
		if v == nil || v.PurchaseToken == "" {
			continue
		}
		page.Purchases = append(page.Purchases, VoidedPurchase{
			PurchaseToken: v.PurchaseToken, OrderID: v.OrderId, VoidedQuantity: v.VoidedQuantity,
			PurchasedAt: msTime(v.PurchaseTimeMillis), VoidedAt: msTime(v.VoidedTimeMillis),
			Reason: v.VoidedReason, Source: v.VoidedSource,
		})
	}
	if tp := res.TokenPagination; tp != nil {
		page.NextToken = tp.NextPageToken
	}
	return page, nil
}
