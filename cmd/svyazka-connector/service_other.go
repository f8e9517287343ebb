//go:build !windows

package main

import (
	"io"
)

func isWindowsService() (bool, error) { return false, nil }

func runService() {}

func installService([]string, func(string) string, io.Writer) error { return errOnlyWindows }

func uninstallService(io.Writer) error { return errOnlyWindows }
