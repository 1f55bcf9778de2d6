package esdb

// Stream categories of the automation side (SPEC §2.4–2.5).
const (
	CategoryAutomation = "automation"
	CategoryRun        = "run"
)

// AutomationStream is the stream of one automation (AutomationCreated,
// AutomationUpdated, AutomationActivated, AutomationPaused).
func AutomationStream(automationID string) string { return CategoryAutomation + "-" + automationID }

// RunStream is the stream of one automation run (RunStarted and every step).
func RunStream(runID string) string { return CategoryRun + "-" + runID }
