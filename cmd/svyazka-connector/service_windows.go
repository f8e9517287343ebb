//go:build windows

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

func isWindowsService() (bool, error) { return svc.IsWindowsService() }

// serviceLogMax is the size at which the service log is rotated on start.
const serviceLogMax = 10 << 20

// runService runs the agent under the service control manager, logging to
// connector.log in the state directory (a service has no console).
func runService() {
	_ = svc.Run(serviceName, serviceHandler{})
}

type serviceHandler struct{}

func (serviceHandler) Execute(_ []string, req <-chan svc.ChangeRequest, status chan<- svc.Status) (bool, uint32) {
	status <- svc.Status{State: svc.StartPending}
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "run" {
		args = args[1:]
	}
	dir, c, err := runFlags(args, os.Getenv)
	if err != nil {
		logStartFailure(err)
		return true, 1
	}
	logFile, log := openServiceLog(dir)
	if logFile != nil {
		defer logFile.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, dir, c, log) }()
	status <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	for {
		select {
		case err := <-done:
			cancel()
			if err != nil {
				log.Error("connector stopped", "err", err)
				return true, 1
			}
			return false, 0
		case r := <-req:
			switch r.Cmd {
			case svc.Interrogate:
				status <- r.CurrentStatus
			case svc.Stop, svc.Shutdown:
				status <- svc.Status{State: svc.StopPending}
				cancel()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
				}
				return false, 0
			}
		}
	}
}

func openServiceLog(dir string) (*os.File, *slog.Logger) {
	path := filepath.Join(dir, "connector.log")
	if fi, err := os.Stat(path); err == nil && fi.Size() > serviceLogMax {
		_ = os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return f, slog.New(slog.NewTextHandler(f, nil))
}

// logStartFailure records why the service could not start where an admin
// looks first: the default state dir's log.
func logStartFailure(err error) {
	f, log := openServiceLog(stateDirOr("", os.Getenv))
	if f != nil {
		defer f.Close()
	}
	log.Error("service cannot start", "err", err)
}

// installService registers the service to start automatically with
// "run --state-dir DIR", restarting it after a crash, and starts it.
func installService(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := newFlagSet("install")
	stateDir := fs.String("state-dir", "", "")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dir, err := filepath.Abs(stateDirOr(*stateDir, getenv))
	if err != nil {
		return err
	}
	if _, _, err := runFlags([]string{"--state-dir", dir}, getenv); err != nil {
		return fmt.Errorf("the connector is not configured yet (%v); run `svyazka-connector pair` first", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(serviceName); err == nil {
		s.Close()
		return fmt.Errorf("service %s is already installed; run `svyazka-connector uninstall` first", serviceName)
	}
	s, err := m.CreateService(serviceName, exe, mgr.Config{
		DisplayName: "Связка IDENT & amoCRM — коннектор",
		Description: "Передаёт изменения базы данных IDENT в amoCRM через сервер Связки.",
		StartType:   mgr.StartAutomatic,
	}, "run", "--state-dir", dir)
	if err != nil {
		return fmt.Errorf("create service %s: %w", serviceName, err)
	}
	defer s.Close()
	err = s.SetRecoveryActions([]mgr.RecoveryAction{
		{Type: mgr.ServiceRestart, Delay: 10 * time.Second},
		{Type: mgr.ServiceRestart, Delay: time.Minute},
		{Type: mgr.ServiceRestart, Delay: 5 * time.Minute},
	}, 24*60*60)
	if err != nil {
		return fmt.Errorf("set recovery actions: %w", err)
	}
	if err := s.Start(); err != nil {
		return fmt.Errorf("start service %s: %w", serviceName, err)
	}
	fmt.Fprintf(stdout, "Служба %s установлена и запущена (каталог состояния %s).\n", serviceName, dir)
	return nil
}

// uninstallService stops the service (waiting up to 30 s) and deletes it.
func uninstallService(stdout io.Writer) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("connect to the service manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(serviceName)
	if err != nil {
		return fmt.Errorf("service %s is not installed: %w", serviceName, err)
	}
	defer s.Close()
	if st, err := s.Control(svc.Stop); err == nil {
		for deadline := time.Now().Add(30 * time.Second); st.State != svc.Stopped && time.Now().Before(deadline); {
			time.Sleep(300 * time.Millisecond)
			if st, err = s.Query(); err != nil {
				break
			}
		}
	} else if !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
		return fmt.Errorf("stop service %s: %w", serviceName, err)
	}
	if err := s.Delete(); err != nil {
		return fmt.Errorf("delete service %s: %w", serviceName, err)
	}
	fmt.Fprintf(stdout, "Служба %s удалена. Каталог состояния оставлен на месте.\n", serviceName)
	return nil
}
