# Creates the Windows shortcuts of trayagent for the current user (run after `pip install trayagent`):
#  - Start menu and Desktop: "trayagent" starts the agent (tray icon); dropping folders onto the Desktop
#    shortcut passes their paths as arguments to `trayagent open`, which forwards them to the running agent
#    (the Dataset dialog opens prefilled).
# Written against the WScript.Shell COM API; not run in this project's CI (Linux only).
param([string]$Python = (Get-Command pythonw.exe -ErrorAction Stop).Source)

$shell = New-Object -ComObject WScript.Shell
$icon = & $Python.Replace("pythonw.exe", "python.exe") -c "import importlib.resources as r; print(r.files('trayagent').joinpath('icons', 'trayagent.ico'))"

function New-Shortcut([string]$Path, [string]$Arguments, [string]$Description) {
    $link = $shell.CreateShortcut($Path)
    $link.TargetPath = $Python
    $link.Arguments = $Arguments
    $link.IconLocation = $icon
    $link.Description = $Description
    $link.Save()
}

$menu = Join-Path ([Environment]::GetFolderPath("Programs")) "trayagent.lnk"
New-Shortcut $menu "-m trayagent.cli" "Upload beamline data to facility storage and catalogue"
$desktop = Join-Path ([Environment]::GetFolderPath("Desktop")) "trayagent - drop folders here.lnk"
New-Shortcut $desktop "-m trayagent.cli open" "Drop folders here to upload them with trayagent"
Write-Output "created $menu and $desktop"
