package httpapi

import (
	"context"

	"github.com/labstack/echo/v4"

	"github.com/larkhq/lark/domain/explain"
	"github.com/larkhq/lark/projections/events"
)

// ExplainDeps are what the explain routes call (SPEC §2.6 and
// GET /v1/events/{id}). When GetEventFunc is nil those routes are not served.
type ExplainDeps struct {
	GetEventFunc     func(ctx context.Context, ws, id string) (events.Event, error)
	ExplainEventFunc func(ctx context.Context, ws, id string) (explain.EventExplanation, error)
	ExplainRunFunc   func(ctx context.Context, ws, id string) (explain.RunExplanation, error)
}

// explainRoutes registers GET /v1/events/{id}, its explanation and a run's.
func (a *api) explainRoutes(v1 *echo.Group) {
	if a.GetEventFunc == nil {
		return
	}
	v1.GET("/events/:id", a.getEvent)
	v1.GET("/events/:id/explain", a.explainEvent)
	v1.GET("/automation-runs/:id/explain", a.explainRun)
}

func (a *api) getEvent(c echo.Context) error {
	e, err := a.GetEventFunc(c.Request().Context(), principal(c).WorkspaceID, pathParam(c, "id"))
	if err != nil {
		return err
	}
	return data(c, 200, e)
}

func (a *api) explainEvent(c echo.Context) error {
	x, err := a.ExplainEventFunc(c.Request().Context(), principal(c).WorkspaceID, pathParam(c, "id"))
	if err != nil {
		return err
	}
	return data(c, 200, x)
}

func (a *api) explainRun(c echo.Context) error {
	x, err := a.ExplainRunFunc(c.Request().Context(), principal(c).WorkspaceID, pathParam(c, "id"))
	if err != nil {
		return err
	}
	return data(c, 200, x)
}
