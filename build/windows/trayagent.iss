; Inno Setup script: the Windows installer of trayagent, from the PyInstaller bundle.
;   python -m PyInstaller build\trayagent.spec --noconfirm --distpath dist
;   iscc /DAppVersion=0.1.0 build\windows\trayagent.iss      -> dist\trayagent-setup-0.1.0.exe
; Per-user install by default (no administrator needed), or for all users when run elevated.
; - Start menu and Desktop shortcuts run trayagentw.exe (no console window). Folders dropped on the
;   Desktop shortcut reach the agent: Explorer passes their paths as arguments to `trayagentw.exe open`,
;   which hands them to the running agent (the Dataset dialog opens prefilled) or starts it.
; - Autostart (optional task): the same per-user Run value ("trayagent") that Settings' "Start trayagent
;   when I log in" writes, so the two agree; the uninstaller removes it.
; - The uninstaller leaves the user's queue, catalogue, configuration and logs (%LOCALAPPDATA%\trayagent)
;   in place unless the user asks to delete them. The site-wide file (%PROGRAMDATA%\trayagent) is IT's
;   and is never touched.
; Not run in this project's Linux CI; .github/workflows/windows.yml builds it on a hosted Windows runner.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define Dist "..\..\dist\trayagent"

[Setup]
AppId={{6F1B2A8C-5D4E-4C39-9B7A-3E2F1D0C8B71}
AppName=trayagent
AppVersion={#AppVersion}
AppPublisher=trayagent developers
DefaultDirName={autopf}\trayagent
DefaultGroupName=trayagent
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
OutputDir=..\..\dist
OutputBaseFilename=trayagent-setup-{#AppVersion}
SetupIconFile=..\..\trayagent\icons\trayagent.ico
UninstallDisplayIcon={app}\trayagentw.exe
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
CloseApplications=yes  ; a running agent is asked to close (Restart Manager) before its files are replaced

[Tasks]
Name: "desktopicon"; Description: "A Desktop shortcut (drop folders on it to upload them)"; GroupDescription: "Shortcuts:"
Name: "autostart"; Description: "Start trayagent when I log in"; GroupDescription: "Start:"; Flags: unchecked

[Files]
Source: "{#Dist}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\trayagent"; Filename: "{app}\trayagentw.exe"; Comment: "Upload beamline data to facility storage and catalogue"
Name: "{autodesktop}\trayagent - drop folders here"; Filename: "{app}\trayagentw.exe"; Parameters: "open"; Comment: "Drop folders here to upload them with trayagent"; Tasks: desktopicon

[Registry]
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; ValueName: "trayagent"; ValueData: """{app}\trayagentw.exe"" agent"; Flags: uninsdeletevalue; Tasks: autostart

[Run]
Filename: "{app}\trayagentw.exe"; Description: "Start trayagent now"; Flags: nowait postinstall skipifsilent

[Code]
// The user's data: removed only when they say so (default: kept, so a reinstall carries on).
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  Data: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    RegDeleteValue(HKEY_CURRENT_USER, 'Software\Microsoft\Windows\CurrentVersion\Run', 'trayagent');
    Data := ExpandConstant('{localappdata}\trayagent');
    if DirExists(Data) and (not UninstallSilent) and
       (MsgBox('Also delete your trayagent queue, local catalogue, configuration and logs in ' + Data + '?' + #13#10 +
               'Choose No to keep them (a later installation carries on where this one stopped).',
               mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES) then
      DelTree(Data, True, True, True);
  end;
end;
