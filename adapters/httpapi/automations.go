package httpapi

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/larkhq/lark/domain/automation"
	"github.com/larkhq/lark/domain/failure"
	"github.com/larkhq/lark/domain/payload"
	"github.com/larkhq/lark/projections/automations"
)

// AutomationDeps are what the automations and runs routes call (SPEC
// §2.4–2.5). When CreateAutomationFunc is nil those routes are not served.
type AutomationDeps struct {
	CreateAutomationFunc   func(ctx context.Context, ws string, def automation.Definition) (string, error)
	ReplaceAutomationFunc  func(ctx context.Context, ws, id string, def automation.Definition) error
	ActivateAutomationFunc func(ctx context.Context, ws, id string) error
	PauseAutomationFunc    func(ctx context.Context, ws, id string) error
	GetAutomationFunc      func(ctx context.Context, ws, id string) (automations.Automation, error)
	ListAutomationsFunc    func(ctx context.Context, ws string, limit int, cursor string) ([]automations.Automation, string, error)

	ListRunsFunc func(ctx context.Context, ws string, f RunFilter, limit int, cursor string) ([]Run, string, error)
	GetRunFunc   func(ctx context.Context, ws, id string) (Run, error)
}

// automationRoutes registers SPEC §2.4 and §2.5's run routes on v1.
func (a *api) automationRoutes(v1 *echo.Group) {
	if a.CreateAutomationFunc == nil {
		return
	}
	size := a.jsonBody(func() int64 { return a.MaxEventBytes })
	v1.POST("/automations", a.createAutomation, size)
	v1.GET("/automations", a.listAutomations)
	v1.GET("/automations/:id", a.getAutomation)
	v1.PUT("/automations/:id", a.replaceAutomation, size)
	v1.POST("/automations/:id/activate", a.activateAutomation)
	v1.POST("/automations/:id/pause", a.pauseAutomation)
	v1.GET("/automation-runs", a.listRuns)
	v1.GET("/automation-runs/:id", a.getRun)
}

// definition decodes a request body as an automation definition. JSON
// problems answer like every other body (invalid_json, invalid_body); a
// body of the wrong shape (nodes not an array, ...) is invalid_automation.
func definition(c echo.Context) (automation.Definition, error) {
	if _, err := payload.Decode(body(c)); err != nil {
		return automation.Definition{}, err
	}
	def, err := automation.Parse(body(c))
	if err != nil {
		return automation.Definition{}, failure.Wrap(automation.InvalidAutomation, err, "%v", err)
	}
	return def, nil
}

func (a *api) createAutomation(c echo.Context) error {
	def, err := definition(c)
	if err != nil {
		return err
	}
	ws := principal(c).WorkspaceID
	id, err := a.CreateAutomationFunc(c.Request().Context(), ws, def)
	if err != nil {
		return err
	}
	return a.answerAutomation(c, http.StatusCreated, ws, id)
}

func (a *api) replaceAutomation(c echo.Context) error {
	def, err := definition(c)
	if err != nil {
		return err
	}
	ws, id := principal(c).WorkspaceID, pathParam(c, "id")
	if err := a.ReplaceAutomationFunc(c.Request().Context(), ws, id, def); err != nil {
		return err
	}
	return a.answerAutomation(c, http.StatusOK, ws, id)
}

func (a *api) activateAutomation(c echo.Context) error {
	ws, id := principal(c).WorkspaceID, pathParam(c, "id")
	if err := a.ActivateAutomationFunc(c.Request().Context(), ws, id); err != nil {
		return err
	}
	return a.answerAutomation(c, http.StatusOK, ws, id)
}

func (a *api) pauseAutomation(c echo.Context) error {
	ws, id := principal(c).WorkspaceID, pathParam(c, "id")
	if err := a.PauseAutomationFunc(c.Request().Context(), ws, id); err != nil {
		return err
	}
	return a.answerAutomation(c, http.StatusOK, ws, id)
}

func (a *api) getAutomation(c echo.Context) error {
	return a.answerAutomation(c, http.StatusOK, principal(c).WorkspaceID, pathParam(c, "id"))
}

func (a *api) answerAutomation(c echo.Context, status int, ws, id string) error {
	au, err := a.GetAutomationFunc(c.Request().Context(), ws, id)
	if err != nil {
		return err
	}
	return data(c, status, au)
}

func (a *api) listAutomations(c echo.Context) error {
	limit, cursor, err := paging(c)
	if err != nil {
		return err
	}
	items, next, err := a.ListAutomationsFunc(c.Request().Context(), principal(c).WorkspaceID, limit, cursor)
	if err != nil {
		return err
	}
	return page(c, items, next)
}
