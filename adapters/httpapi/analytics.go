package httpapi

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/larkhq/lark/projections/analytics"
)

// AnalyticsDeps are what the analytics routes call (SPEC §2.7). When
// EventCountsFunc is nil those routes are not served.
type AnalyticsDeps struct {
	// EventCountsFunc counts the workspace's events per UTC day and name;
	// from and to are the raw query parameters ("" for the defaults), name
	// the optional exact event_name filter. Bad parameters are 400-class
	// failures naming the field.
	EventCountsFunc func(ctx context.Context, ws, from, to, name string) (analytics.EventCounts, error)
	// AutomationAnalyticsFunc computes one automation's analytics, or
	// failure.NotFound.
	AutomationAnalyticsFunc func(ctx context.Context, ws, id string) (analytics.AutomationStats, error)
}

// analyticsRoutes registers GET /v1/analytics/events and
// GET /v1/analytics/automations/{id}.
func (a *api) analyticsRoutes(v1 *echo.Group) {
	if a.EventCountsFunc == nil {
		return
	}
	v1.GET("/analytics/events", a.eventCounts)
	v1.GET("/analytics/automations/:id", a.automationAnalytics)
}

func (a *api) eventCounts(c echo.Context) error {
	q := c.QueryParams()
	res, err := a.EventCountsFunc(c.Request().Context(), principal(c).WorkspaceID, q.Get("from"), q.Get("to"), q.Get("event_name"))
	if err != nil {
		return err
	}
	return data(c, 200, res)
}

func (a *api) automationAnalytics(c echo.Context) error {
	res, err := a.AutomationAnalyticsFunc(c.Request().Context(), principal(c).WorkspaceID, pathParam(c, "id"))
	if err != nil {
		return err
	}
	return data(c, 200, res)
}
