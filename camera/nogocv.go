//go:build nogocv || !cgo

package camera

import "log/slog"

const haveGoCV = false

func newGoCVDriver(Config, *slog.Logger) (driver, error) { return nil, ErrNoGoCV }
