package receipts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/awa/go-iap/appstore/api"
)

// NotificationHistoryPage is one page of Apple's Get Notification History:
// the signed payloads of notifications Apple sent (or tried to send), each
// exactly as a notification's body carries it.
type NotificationHistoryPage struct {
	SignedPayloads []string
	// NextToken continues the listing when HasMore.
	NextToken string
	HasMore   bool
}

// appleHistoryStart is the oldest date Apple keeps notification history
// for (June 6, 2022); earlier start dates are refused.
var appleHistoryStart = time.Date(2022, 6, 6, 0, 0, 0, 0, time.UTC)

// maxAppleHistorySpan is how far back Apple answers (180 days).
const maxAppleHistorySpan = 180 * 24 * time.Hour

// NotificationHistory lists the App Store Server Notifications of this
// client's environment sent between start and end
// (POST /inApps/v1/notifications/history), one page per call: token is the
// previous page's NextToken. The payloads are not verified here: feed them
// to the inbox like a notification, which verifies them. Errors: as
// Confirm.
func (a *AppleServerAPI) NotificationHistory(ctx context.Context, start, end time.Time, token string) (NotificationHistoryPage, error) {
	if oldest := end.Add(-maxAppleHistorySpan + time.Minute); start.Before(oldest) {
		start = oldest
	}
	if start.Before(appleHistoryStart) {
		start = appleHistoryStart
	}
	body, err := json.Marshal(api.NotificationHistoryRequest{StartDate: start.UnixMilli(), EndDate: end.UnixMilli()})
	if err != nil {
		return NotificationHistoryPage{}, err
	}
	u := a.host + api.PathGetNotificationHistory
	if token != "" {
		u += "?" + url.Values{"paginationToken": {token}}.Encode()
	}
	// GetNotificationHistory drops the status code of unsuccessful
	// answers, so call the same endpoint through Do.
	status, answer, err := a.client.Do(ctx, http.MethodPost, u, bytes.NewReader(body))
	if status == 0 && err != nil {
		if errors.Is(err, api.ErrAuthKeyInvalidPem) || errors.Is(err, api.ErrAuthKeyInvalidType) {
			return NotificationHistoryPage{}, fmt.Errorf("%w: app store server api key: %v", ErrMisconfigured, err)
		}
		return NotificationHistoryPage{}, unavailable("app store notification history: %v", err)
	}
	var apiErr *api.Error
	switch {
	case status == http.StatusOK:
		if err != nil {
			return NotificationHistoryPage{}, unavailable("app store notification history: %v", err)
		}
	case errors.As(err, &apiErr) && apiErr.Retryable():
		return NotificationHistoryPage{}, unavailable("app store notification history: HTTP %d: %v", status, apiErr)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return NotificationHistoryPage{}, fmt.Errorf("%w: app store notification history: HTTP %d", ErrMisconfigured, status)
	case status == http.StatusBadRequest:
		return NotificationHistoryPage{}, fmt.Errorf("%w: app store notification history refused the request: %v", ErrMisconfigured, err)
	default:
		return NotificationHistoryPage{}, unavailable("app store notification history: HTTP %d", status)
	}
	var res api.NotificationHistoryResponses
	if err := json.Unmarshal(answer, &res); err != nil {
		return NotificationHistoryPage{}, unavailable("app store notification history: undecodable answer: %v", err)
	}
	page := NotificationHistoryPage{HasMore: res.HasMore, NextToken: res.PaginationToken}
	for _, item := range res.NotificationHistory {
		if item.SignedPayload != "" {
			page.SignedPayloads = append(page.SignedPayloads, item.SignedPayload)
		}
	}
	if page.HasMore && page.NextToken == "" {
		page.HasMore = false // nothing to continue with
	}
	return page, nil
}
