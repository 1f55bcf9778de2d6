package httpapi

import (
	"github.com/labstack/echo/v4"

	"github.com/larkhq/lark/projections/runs"
)

// Run is an automation run as the API shows it.
type Run = runs.Run

// RunFilter narrows GET /v1/automation-runs.
type RunFilter = runs.Filter

func (a *api) listRuns(c echo.Context) error {
	limit, cursor, err := paging(c)
	if err != nil {
		return err
	}
	f := RunFilter{AutomationID: c.QueryParam("automation_id"), Email: c.QueryParam("email"), Status: c.QueryParam("status")}
	items, next, err := a.ListRunsFunc(c.Request().Context(), principal(c).WorkspaceID, f, limit, cursor)
	if err != nil {
		return err
	}
	return page(c, items, next)
}

func (a *api) getRun(c echo.Context) error {
	r, err := a.GetRunFunc(c.Request().Context(), principal(c).WorkspaceID, pathParam(c, "id"))
	if err != nil {
		return err
	}
	return data(c, 200, r)
}
